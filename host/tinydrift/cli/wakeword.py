"""`tinydrift wakeword`: microWakeWord's streaming wake-word models: check one, run it over
WAV files as the device would, write its C for the firmware app."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import click

from tinydrift.cli.common import progress_bars
from tinydrift.cli.params import (C_NAME_PARAM, COUNT, OUTPUT_FOLDER, TARGET_ARL0, WAKEWORD_CHANGE, FiniteFloat,
                                  input_file, input_folder, input_path)
from tinydrift.errors import TinydriftError
from tinydrift.wakeword.labels import ERROR_RATE_ARL0_LABELS, LABEL_MODES
from tinydrift.monitor.calibrate import DEFAULT_SIMULATED, MIN_SIMULATED_PER_TARGET
from tinydrift.wakeword.monitor import INFERENCE_SECONDS, MIN_SESSION_SECONDS, REFERENCE_SECONDS, REFERENCE_SESSIONS
from tinydrift.wakeword.monitor import TARGET_ARL0 as DEFAULT_TARGET_ARL0

# Below these a WAV reference is warned about: a handful of rooms says little of others
# (the espeak-ng default is 40 sessions of 3 min).
FEW_SESSIONS = 10
FEW_MINUTES = 30

CONFIG_OPTION = click.option("--config", "config", type=input_file("microWakeWord JSON config"), default=None,
                             help="The model's JSON config, when it is not beside the .tflite with the same name.")


@click.group("wakeword")
def wakeword():
    """microWakeWord's streaming wake-word models (the ones ESPHome voice satellites run).

    \b
    tinydrift wakeword check okay_nabu               what the device needs to run it
    tinydrift wakeword detect okay_nabu speech.wav   its wake events in a recording
    tinydrift wakeword export okay_nabu --out models/okay_nabu
                                                     its C for the firmware app
    tinydrift wakeword calibrate okay_nabu --out models/okay_nabu
                                                     its drift monitor's config
    tinydrift wakeword demo okay_nabu                the whole loop in the emulator
    """


@wakeword.command("check")
@click.argument("model")
@CONFIG_OPTION
def check_command(model: str, config: Path | None):
    """Load MODEL, check its config against it, and print what running it costs.

    MODEL is a .tflite file with its JSON config beside it (same name), the JSON config, or
    the name of a model pymicro-wakeword ships (alexa, hey_jarvis, hey_mycroft, okay_nabu).
    Every mismatch between the config and the model (input shape or quantization, output,
    feature step, cutoff, window) is named, and the command exits with 1.

    Printed: the wake phrase; the cutoff (and the uint8 one the device compares with, the
    config's x 255 rounded down as ESPHome does); the sliding window; the input (frames of
    10 ms per inference); RAM of the generated C (arena and streaming state) beside the
    arena the config asks TFLite Micro for; multiply-accumulates per inference and per
    second of audio.

    \b
    Examples:
      tinydrift wakeword check okay_nabu
      tinydrift wakeword check my_word.tflite
      tinydrift wakeword check my_word.tflite --config configs/my_word.json
    """
    from tinydrift.codegen.model_c import plan_model
    from tinydrift.wakeword.config import load_wakeword

    loaded = load_wakeword(model, config)
    plan = plan_model(loaded.model, "model", source=str(loaded.model_path))
    per_second = 1000 / (loaded.feature_step_ms * loaded.stride)
    arena = "not given" if loaded.tensor_arena_size is None else f"{loaded.tensor_arena_size:,} bytes"
    click.echo(f"{loaded.name}: \"{loaded.wake_word}\" ({loaded.model_path}, {loaded.config_path.name})")
    click.echo(f"  detection: sliding-window mean of {loaded.sliding_window_size} probabilities above "
               f"{loaded.probability_cutoff} (uint8 {loaded.probability_cutoff_u8}/255)")
    click.echo(f"  input: {loaded.stride} frames of {loaded.feature_step_ms} ms per inference, "
               f"{per_second:.1f} inferences per second")
    click.echo(f"  RAM of the generated C: arena {plan.arena_bytes:,} + state {plan.state_bytes:,} = "
               f"{plan.arena_bytes + plan.state_bytes:,} bytes; the config's TFLite Micro arena: {arena}")
    click.echo(f"  compute: {plan.macs:,} multiply-accumulates per inference, "
               f"{plan.macs * per_second / 1e6:.2f} M per second of audio")
    if loaded.trained_languages:
        click.echo(f"  trained languages: {', '.join(loaded.trained_languages)}")


@wakeword.command("detect")
@click.argument("model")
@click.argument("wavs", nargs=-1, required=True, type=input_path("16 kHz mono 16-bit WAV file, or a folder of them"))
@CONFIG_OPTION
def detect_command(model: str, wavs: tuple[Path, ...], config: Path | None):
    """Run MODEL over each WAV file (a folder: every .wav file in it and its sub-folders,
    sorted) as the device runs it and print its wake events.

    MODEL is a .tflite file with its JSON config beside it (same name), the JSON config, or
    the name of a model pymicro-wakeword ships (alexa, hey_jarvis, hey_mycroft, okay_nabu).
    Each WAV (16 kHz mono 16-bit) is a stream of its own, as a replayed clip is on the
    device: the 10 ms front end, the model's state and the detector start afresh.

    This is the firmware app's twin (tinydrift.app.expected_detections), the prediction the
    device's DETECTION frames are checked against: the device's front end in its host twin,
    the model on TFLite Micro (the int8 reference the generated C equals on every
    invocation; no C compiler needed), then ESPHome's micro_wake_word's decision: a wake
    when the mean of the last `sliding_window_size` probabilities exceeds the cutoff; after
    a wake (and in a stream's first second) detections are held off until 1 s of frames
    below the cutoff has passed, so one wake word wakes once.

    A wake is printed at the end of the inference that decided it, in seconds from the
    start of the file.

    \b
    Examples:
      tinydrift wakeword detect okay_nabu kitchen.wav
      tinydrift wakeword detect my_word.tflite day1.wav day2.wav
      tinydrift wakeword detect okay_nabu recordings/
    """
    from tinydrift.app import expected_detections, stream_end
    from tinydrift.frontend import SAMPLE_RATE
    from tinydrift.wakeword.config import load_wakeword
    from tinydrift.wakeword.export import model_id
    from tinydrift.wakeword.stream import read_stream_wav

    missing = [name for name in ("tensorflow", "tflite_micro") if importlib.util.find_spec(name) is None]
    if missing:
        raise TinydriftError(f"detect runs the device's twin on {' and '.join(missing)}, which this install lacks: "
                             "pip install 'tinydrift[train,wakeword]'")
    from tinydrift.data.wavfolder import wav_files

    loaded = load_wakeword(model, config)
    files = []
    for path in wavs:
        found = wav_files(path, "**/*") if path.is_dir() else [path]
        if not found:
            raise TinydriftError(f"{path}: a folder without .wav files; give WAV files or a folder of them")
        files += found
    wavs = tuple(files)
    streams = [read_stream_wav(path) for path in wavs]  # every file checked before any work
    # The device compares uint8 values: a wake's window mean printed in the config's 0-1 units
    # (floored, and /256 where the cutoff is x 255) read 0.84 against a cutoff of 0.85.
    click.echo(f"{loaded.name} (\"{loaded.wake_word}\"): mean of {loaded.sliding_window_size} uint8 probabilities "
               f"above {loaded.probability_cutoff_u8} (the config's {loaded.probability_cutoff:g} x 255, "
               "rounded down), on TFLite Micro")
    for path, pcm in zip(wavs, streams):
        frames = expected_detections([pcm], loaded, model_id(loaded))
        wakes = [f for f in frames if f.wake]
        for frame in wakes:
            click.echo(f"{path}: wake at {frame.stream_position / SAMPLE_RATE:.2f} s (window mean "
                       f"{frame.window_mean}, rounded down; probability {frame.probability}; uint8)")
        highest = max((f.probability for f in frames), default=0) / 256
        click.echo(f"{path}: {len(wakes)} wake{'s' if len(wakes) != 1 else ''} in {len(pcm) / SAMPLE_RATE:.1f} s "
                   f"({len(frames)} inferences, highest probability {highest:.2f})")
        early = [f for f in frames if f.probability >= loaded.probability_cutoff_u8 and f.stream_position <= SAMPLE_RATE]
        if not wakes and early:
            click.echo(f"warning: {path}: the probability passed the cutoff {early[0].stream_position / SAMPLE_RATE:.2f} s "
                       "in, within the stream's first second, when detections are held off (as on the device after "
                       "a reset): give the clip a second or more of audio before the phrase", err=True)
        if not frames:
            first = stream_end(0, loaded.stride) / SAMPLE_RATE
            click.echo(f"warning: {path} is shorter than the model's first input ({first * 1000:.0f} ms of audio): "
                       "nothing was heard", err=True)


@wakeword.command("export")
@click.argument("model")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, required=True,
              help="Model folder: the C goes into its include/, where the firmware build looks.")
@click.option("--name", type=C_NAME_PARAM, default=None,
              help="C prefix (td_<name>_invoke()...); default: the model's file name.")
@CONFIG_OPTION
def export_command(model: str, out_dir: Path, name: str | None, config: Path | None):
    """Write MODEL's C for the firmware app, which then runs as a streaming detector.

    MODEL is a .tflite file with its JSON config beside it (same name), the JSON config, or
    the name of a model pymicro-wakeword ships (alexa, hey_jarvis, hey_mycroft, okay_nabu).
    Writes include/td_model_NAME.{h,c} (the model, its state static) and
    include/td_reference_NAME.h (the hash HELLO carries, the wake word, the uint8 cutoff, the
    sliding window) with its JSON twin detector.json, which capture, report and monitor read
    from --model-dir. `tinydrift flash --model FOLDER` or `tinydrift emulate --model FOLDER`
    builds the app for it (with the front end's 10 ms step); docs/app.md §1 says what the
    device then does.

    \b
    Examples:
      tinydrift wakeword export okay_nabu --out build/okay_nabu
      tinydrift wakeword export my_word.tflite --out models/my_word --name my_word
    """
    from tinydrift.wakeword.config import load_wakeword
    from tinydrift.wakeword.export import model_digest, write_device_sources

    loaded = load_wakeword(model, config)
    written = write_device_sources(loaded, out_dir, name)
    click.echo(f"wrote {', '.join(str(p) for p in written)}")
    click.echo(f"model hash {model_digest(loaded)}")


def audio_time(seconds: float) -> str:
    """"50 minutes", "8.3 hours", "35 days": a span of audio in the unit that reads best."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.{0 if seconds >= 20 * size else 1}f} {unit}"
    return f"{seconds:.0f} s"


def _too_few_simulated(error: Exception, simulated: int, target_arl0: float, *, after_simulating: bool = True) -> TinydriftError:
    message = f"{error}: raise --simulated (now {simulated:,}) or lower --target-arl0 (now {target_arl0:,.0f})"
    if after_simulating:  # more of the same few sessions need not help: their scores barely vary
        message += ("; if that does not help, the reference is too little or too uniform (few or short sessions, "
                    "recordings without speech): give more or longer sessions")
    return TinydriftError(message)


@wakeword.command("calibrate")
@click.argument("model")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, required=True,
              help="Model folder: the header goes into its include/, monitor.json beside it.")
@click.option("--wavs", "wav_folder", type=input_folder("folder of reference WAV files"), default=None,
              help="Reference recordings of the deployment's kind, one session each (16 kHz mono 16-bit); "
                   "default: espeak-ng sessions.")
@click.option("--sessions", type=click.IntRange(2, 10_000), default=REFERENCE_SESSIONS, show_default=True,
              help="espeak-ng sessions to synthesize (calibration resamples whole sessions: two at least). "
                   "The defaults are what the wake-word bench measures; "
                   "fewer or shorter sessions can leave too little variety to calibrate (20 of 90 s did for "
                   "--target-arl0 10000 in a trial, 14 of 61 s did not).")
@click.option("--seconds", type=click.IntRange(MIN_SESSION_SECONDS, 86_400), default=REFERENCE_SECONDS, show_default=True,
              help="Length of each espeak-ng session (the device's commissioning and its averages' settling "
                   f"need {MIN_SESSION_SECONDS} s).")
@click.option("--target-arl0", type=TARGET_ARL0, default=DEFAULT_TARGET_ARL0, show_default=True,
              help=f"Inferences between false alarms ({1000 * INFERENCE_SECONDS:g} ms each: {DEFAULT_TARGET_ARL0:,} "
                   f"are {audio_time(DEFAULT_TARGET_ARL0 * INFERENCE_SECONDS)} of audio), all scores together. Alarms "
                   "latch until the host resets the monitor.")
@click.option("--simulated", type=COUNT, default=DEFAULT_SIMULATED, show_default=True,
              help=f"Inferences calibration simulates (fewer: faster, less memory, levels less exact), at least "
                   f"{MIN_SIMULATED_PER_TARGET} per inference of --target-arl0. With the default the whole "
                   "command peaked at 5.9 GB of memory (measured 2026-12-07).")
@click.option("--labels", "label_mode", type=click.Choice(list(LABEL_MODES)), default="wakes", show_default=True,
              help="How users will label the device's wakes (tinydrift label): 'wakes' confirm or reject every "
                   "wake; 'wakes-and-misses' also report every missed wake phrase, whose errors come far more often. "
                   "The error-rate test (ERROR_RATE) is calibrated for this labelling: calibrated for 'wakes' and "
                   "told of misses too, it false-alarms more often than --error-rate-arl0 says.")
@click.option("--error-rate-arl0", type=click.IntRange(1000, 10**9), default=ERROR_RATE_ARL0_LABELS, show_default=True,
              help="Labels between false ERROR_RATE alarms the error-rate test is calibrated for.")
@click.option("--workers", type=COUNT, default=None, help="Synthesis processes (default: all cores).")
@click.option("--name", type=C_NAME_PARAM, default=None, help="C name; default: the model's file name.")
@CONFIG_OPTION
def calibrate_command(model: str, out_dir: Path, wav_folder: Path | None, sessions: int, seconds: int,
                      target_arl0: float, simulated: int, label_mode: str, error_rate_arl0: int, workers: int | None,
                      name: str | None, config: Path | None):
    """Calibrate the drift monitor for MODEL, a streaming wake-word detector, on reference
    audio of its deployment's kind, and write its config for the device.

    The monitor reads, per inference, a summary of the model's three input frames (the 40
    channel means, the at-floor counts of channel pairs, the loudness of their new samples
    and its spectral tilt, the lowest loudness of the last 16 inferences)
    and the probability p as the two classes [1 - p, p]: input drift, confidence and entropy of the
    sigmoid, and the wake rate against the reference's. Its levels meet the target
    false-alarm rate on simulated devices that each hear one session (one place).

    Reference audio: the WAV files of --wavs (sub-folders too), each a session (a place, a day); or espeak-ng
    sessions of two or three talkers saying everyday phrases over room noise, the wake
    phrase in one utterance of ten.

    The error-rate test on users' labels (LABEL frames, ERROR_RATE) is calibrated for how
    they will label (--labels) on the espeak-ng sessions, whose wake phrases' positions are
    known: its level is the lowest whose false alarms come at most once in --error-rate-arl0
    labels. WAV files carry no such positions, so with --wavs the level is the lowest that
    holds that budget at any error share from 0.5 % to 35 % (--labels then does not
    matter); DDM's textbook 3 standard deviations false-alarm about once in 2,000-3,000.

    \b
    Examples:
      tinydrift wakeword calibrate okay_nabu --out build/okay_nabu
      tinydrift wakeword calibrate okay_nabu --out build/okay_nabu --labels wakes-and-misses
      tinydrift wakeword calibrate my_word.tflite --out models/my_word --wavs recordings/kitchen
    """
    import os

    from tinydrift.monitor.calibrate import TooFewSimulated, require_simulated
    from tinydrift.wakeword.config import load_wakeword
    from tinydrift.wakeword.export import check_monitor_folder, write_monitor
    from tinydrift.app import wake_positions
    from tinydrift.wakeword.labels import (TooFewLabels, calibrate_label_feedback, calibrate_label_feedback_any_share,
                                         reference_labels)
    from tinydrift.wakeword.monitor import (calibrate_detector, check_session_lengths, monitor_inputs, reference_sessions,
                                            session_samples)

    missing = [name for name in ("tensorflow", "tflite_micro") if importlib.util.find_spec(name) is None]
    if missing:
        raise TinydriftError(f"calibrate runs the device's twin on {' and '.join(missing)}, which this install lacks: "
                             "pip install 'tinydrift[train,wakeword]'")
    try:
        require_simulated(simulated, target_arl0)  # before minutes of synthesis
    except TooFewSimulated as e:
        raise _too_few_simulated(e, simulated, target_arl0, after_simulating=False) from None
    loaded = load_wakeword(model, config)
    check_monitor_folder(loaded, out_dir, name)  # before minutes of synthesis
    say = lambda m: click.echo(m, err=True)  # noqa: E731
    if wav_folder is None:
        say(f"reference: synthesizing {sessions} espeak-ng sessions of {seconds} s")
    with progress_bars() as bars:
        streams, phrases = reference_sessions(loaded, wav_folder=wav_folder, sessions=sessions, seconds=seconds,
                                            workers=workers or os.cpu_count() or 1, progress_factory=bars)
    from tinydrift.frontend import SAMPLE_RATE

    minutes = sum(len(pcm) for pcm in streams) / SAMPLE_RATE / 60
    if wav_folder is not None and (len(streams) < FEW_SESSIONS or minutes < FEW_MINUTES):
        short = " and ".join(x for x in (f"fewer than {FEW_SESSIONS} recordings" if len(streams) < FEW_SESSIONS else "",
                                          f"under {FEW_MINUTES} min in all" if minutes < FEW_MINUTES else "") if x)
        say(f"warning: {len(streams)} recordings, {minutes:.0f} min in all ({short}): the false-alarm rate is "
            f"calibrated on few places, and in others false alarms can come within minutes instead of one in "
            f"{audio_time(target_arl0 * INFERENCE_SECONDS)} of audio; {FEW_SESSIONS} or more sessions of a few "
            f"minutes each ({FEW_MINUTES} min or "
            "more in all), from where the devices will be, make it hold for others")
    computed = {}

    def inputs(pcm, model):  # one TFLite Micro pass a session serves both calibrations
        if id(pcm) not in computed:
            computed[id(pcm)] = monitor_inputs(pcm, model)
        return computed[id(pcm)]

    with progress_bars() as bars:  # the front end and TFLite Micro over every session: a minute or more
        samples = session_samples(streams, loaded, inputs=inputs, progress_factory=bars)
    check_session_lengths(samples["groups"])
    say(f"calibrating: {simulated:,} simulated inferences on {len(samples['groups']):,} of the reference")
    try:
        with progress_bars() as bars:
            monitor, report = calibrate_detector(samples, target_arl0=target_arl0, n_inferences=simulated,
                                                 progress_factory=bars)
    except TooFewSimulated as e:
        raise _too_few_simulated(e, simulated, target_arl0) from None
    calibrated = (f"{loaded.name}: calibrated for ARL0 {target_arl0:,.0f} ({audio_time(target_arl0 * INFERENCE_SECONDS)} "
                  f"of audio between false alarms) on {len(samples['groups']):,} inferences "
                  f"from {len(streams)} sessions (the simulation took {report.get('seconds', 0):.0f} s)")
    if report.get("idle_scores"):
        say(f"warning: the {', '.join(report['idle_scores'])} score{'s' if len(report['idle_scores']) > 1 else ''} never "
            f"moved on the reference (did {loaded.name} ever fire on it?) and {'are' if len(report['idle_scores']) > 1 else 'is'} "
            "off: only the others watch this deployment; give recordings in which the wake phrase is said now and then")
    few = None
    if phrases is not None:
        woke = [(wake_positions(inputs(pcm, loaded)[1], loaded), wakes, len(pcm)) for pcm, wakes in zip(streams, phrases)]
        try:
            monitor, feedback = calibrate_label_feedback(monitor, reference_labels(woke, label_mode),
                                                         target_arl0_labels=error_rate_arl0)
            basis = (f"for users who label {LABEL_MODES[label_mode]}: {feedback['errors']} errors in "
                     f"{feedback['labels']} reference labels")
        except TooFewLabels as exc:  # minutes of synthesis and TFLite Micro are not thrown away for it
            few = exc.found
    if phrases is None or few is not None:
        monitor, feedback = calibrate_label_feedback_any_share(monitor, target_arl0_labels=error_rate_arl0)
        basis = ("for any error share of 0.5-35 % (WAV files say nothing of where the wake phrase was said)"
                 if few is None else "for any error share of 0.5-35 %")
        if few is not None:
            say(f"warning: {few}: it is set for any error share instead (more sessions, or longer "
                "ones, calibrate it for how users label)")
    click.echo(calibrated)  # once the error-rate test is calibrated too: nothing is written if it cannot be
    click.echo(f"error-rate test {basis}; ERROR_RATE at {feedback['drift_q8'] / 256:g} standard deviations, a false "
               f"alarm at most once in {error_rate_arl0:,} labels"
               + ("" if feedback["budget_met"] else " NOT MET even at the highest level: give a lower "
                  "--error-rate-arl0"))
    written = write_monitor(loaded, monitor, out_dir, name)
    click.echo(f"wrote {', '.join(str(p) for p in written)}")


@wakeword.command("demo")
@click.argument("model")
@click.option("--out", "out_dir", type=OUTPUT_FOLDER, default=Path("build/wakeword_demo"), show_default=True,
              help="Folder for the model's C and monitor, the microphone file and summary.json.")
@click.option("--change", type=WAKEWORD_CHANGE, default="cheap_mic_lowpass_2k", show_default=True,
              help="What happens to the microphone: a scenario of `tinydrift bench wakeword` (not accent): "
                   "white_noise_20db, white_noise_10db, white_noise_0db, babble_10db, babble_5db, babble_0db, "
                   "reverb_400ms, reverb_800ms, far_field, gain_down_20db, gain_up_12db, cheap_mic_lowpass_2k, "
                   "telephone_band, clipping_30db, dead_microphone, stuck_microphone, dc_offset.")
@click.option("--before", "before_s", type=FiniteFloat(min=30, max=3600), default=90.0, show_default=True,
              help="Seconds of the room before the change (the monitor learns its reference in the first 30; "
                   "an hour at most).")
@click.option("--after", "after_s", type=FiniteFloat(min=1, max=3600), default=60.0, show_default=True,
              help="Seconds after the change (an hour at most).")
@click.option("--workers", type=COUNT, default=None, help="Synthesis processes (default: all cores).")
def demo_command(model: str, out_dir: Path, change: str, before_s: float, after_s: float, workers: int | None):
    """The whole loop for MODEL on the emulated board: its C and its monitor, calibrated on
    espeak-ng sessions (cached with `tinydrift bench wakeword`'s in build/bench/wakeword of the
    working folder, a few hundred MB; about 8 min the first time),
    built for QEMU's Cortex-M4, which hears a held-out session of a voice satellite's room
    and then the same room through a changed microphone. Every DETECTION, INFERENCE and
    HEARTBEAT frame is checked against the app's twin; prints the wakes before and after,
    and the monitor's first alarm after the change with its delay. Exits with 1 when a
    frame differs from the twin's.

    \b
    Examples:
      tinydrift wakeword demo okay_nabu
      tinydrift wakeword demo okay_nabu --change babble_0db --after 90
    """
    import os

    from tinydrift.pipeline.wakeword_demo import run_wakeword_demo

    for name in ("tensorflow", "tflite_micro"):
        if importlib.util.find_spec(name) is None:
            raise TinydriftError(f"the demo runs the device's twin on {name}, which this install lacks: "
                                 "pip install 'tinydrift[train,wakeword]'")
    with progress_bars() as bars:
        result = run_wakeword_demo(model, out_dir, change=change, before_s=before_s, after_s=after_s,
                                   workers=workers or os.cpu_count() or 1, log=lambda m: click.echo(m, err=True),
                                   progress_factory=bars)
    click.echo(f"{result.model} on the emulated Cortex-M4: {result.inferences:,} inferences, "
               f"{result.mismatched_frames} frames unlike the twin's")
    click.echo(f"  wakes: {result.wakes_before} in the {result.seconds_before:.0f} s before "
               f"({result.said_before} wake phrase{'' if result.said_before == 1 else 's'} said), {result.wakes_after} "
               f"in the {result.seconds_after:.0f} s after {result.change} ({result.said_after} said)")
    if result.first_alarm_after is None:
        click.echo(f"  no alarm after the change ({result.false_alarms_before} before it)")
    else:
        click.echo(f"  first alarm after the change: {result.first_alarm_after}, {result.delay_seconds} s later "
                   f"({result.false_alarms_before} alarms before it)")
    click.echo(f"wrote {out_dir / 'summary.json'}", err=True)
    if result.mismatched_frames:
        raise SystemExit(1)
