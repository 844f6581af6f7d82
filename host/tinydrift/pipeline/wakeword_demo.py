"""`tinydrift wakeword demo`: the whole loop for a microWakeWord model on the emulated board.

The model's C and its monitor (calibrated as `tinydrift wakeword calibrate` does, at the
wake-word bench's settings, cached with the bench's) in one folder; the firmware built for
QEMU's Cortex-M4; as its microphone, held-out espeak-ng sessions of a voice satellite's
room and then the same sessions through a changed microphone (the bench's scenarios); every
DETECTION, INFERENCE and HEARTBEAT frame the device sends checked bit for bit against the
app's twin; and what the device said: its wakes before and after the change, its first
alarm after it, of which type and how soon.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tinydrift.atomic import write_text
from tinydrift.errors import TinydriftError
from tinydrift.frontend import SAMPLE_RATE
from tinydrift.monitor.config import ALARM_TYPES_MASK, alarm_names


@dataclass
class WakewordDemoResult:
    model: str
    change: str
    seconds_before: float
    seconds_after: float
    inferences: int
    mismatched_frames: int  # DETECTION, INFERENCE and HEARTBEAT frames unlike the twin's
    wakes_before: int
    wakes_after: int
    said_before: int  # wake phrases said whole in the audio before the change
    said_after: int
    false_alarms_before: int  # inferences before the change whose INFERENCE shows a new alarm
    first_alarm_after: str | None  # its types
    delay_seconds: float | None  # from the change to the first alarm after it


def said_in(spans: np.ndarray, length: int, start: int, n: int) -> int:
    """How many of a session's wake phrases (sample `spans` [k, 2] of a session `length`
    samples long) are said whole in `n` samples of it played in a loop from sample `start`."""
    said = 0
    for begin, end in np.asarray(spans, np.int64).reshape(-1, 2):
        ends_at = (begin - start) % length + end - begin  # where its first whole saying ends in the stretch
        if ends_at <= n:
            said += (n - ends_at) // length + 1
    return int(said)


def microphone_change(change: str):
    """The wake-word bench's scenario named `change`, one that changes the microphone (not
    the voices), or a TinydriftError naming them."""
    from tinydrift.pipeline.wakeword_bench import SCENARIOS

    scenarios = {s.name: s for s in SCENARIOS if s.voices is None}
    if change not in scenarios:
        raise TinydriftError(f"{change}: no such change; give one of {', '.join(scenarios)}")
    return scenarios[change]


def run_wakeword_demo(name: str, out_dir: Path, *, change: str = "cheap_mic_lowpass_2k", before_s: float = 90.0,
                      after_s: float = 60.0, cache: Path = Path("build/bench/wakeword"), workers: int = 1,
                      log=print, progress_factory=None) -> WakewordDemoResult:
    """The demo (the module's docstring) into `out_dir`: model/ and summary.json, whole or
    not at all (what it made goes when it fails or is interrupted; the microphone's file
    lives in a temporary folder)."""
    out_dir = Path(out_dir)
    made = next((p for p in (out_dir, out_dir / "model") if not p.exists()), None)
    try:
        with tempfile.TemporaryDirectory(prefix="tinydrift-demo-") as scratch:
            return _run_demo(name, out_dir, Path(scratch), change, before_s, after_s, Path(cache), workers, log,
                             progress_factory)
    except BaseException:
        if made is not None:
            shutil.rmtree(made, ignore_errors=True)
        (out_dir / "summary.json").unlink(missing_ok=True)  # a summary of an earlier run would pass for this one's
        raise


def _run_demo(name: str, out_dir: Path, scratch: Path, change: str, before_s: float, after_s: float, cache: Path,
              workers: int, log, progress_factory) -> WakewordDemoResult:
    from tinydrift.app import HeartbeatTwin, expected_detections, expected_stream_inferences, stream_end
    from tinydrift.link import protocol as P
    from tinydrift.link.replay import write_pcm
    from tinydrift.pipeline.wakeword_bench import WakewordBenchSettings, bench_sessions, calibrated_monitor
    from tinydrift.target import emulator, platformio
    from tinydrift.target.flash import flash
    from tinydrift.wakeword.config import load_wakeword
    from tinydrift.wakeword.export import model_id, write_device_sources, write_monitor

    scenario = microphone_change(change)
    model = load_wakeword(name)
    folder = out_dir / "model"
    settings = WakewordBenchSettings()
    log(f"{model.name}: the C and the monitor (calibrated for ARL0 {settings.target_arl0:,.0f}, cached in {cache})")
    write_device_sources(model, folder)
    config = calibrated_monitor(model, settings, cache, workers, log, progress_factory)
    write_monitor(model, config, folder)
    log("building the firmware for the emulated Cortex-M4")
    elf = flash(platformio.EMULATED_ENV, folder, build_only=True, capture=True).elf

    # one held-out session (one place) played on in a loop, as calibration's simulated devices
    # hear theirs, then on from the same point through the changed microphone
    audio, phrases = bench_sessions(model, 1, settings, cache, workers)
    n_before = int(before_s * SAMPLE_RATE)
    before = np.resize(audio[0], n_before)
    changed = scenario.apply(audio, settings.seed)[0]
    after = np.resize(np.roll(changed, -(n_before % len(changed))), int(after_s * SAMPLE_RATE))
    pcm = np.concatenate([before, after])
    log(f"{len(pcm) / SAMPLE_RATE:.0f} s of audio in QEMU ({change} after {before_s:.0f} s)")
    path = write_pcm([pcm], scratch / "microphone.pcm")
    result = emulator.run(elf, timeout=30 + 10 * len(pcm) / SAMPLE_RATE,
                          semihosting_args=[emulator.audio_file_argument(path, scratch)])
    items = P.StreamParser().feed(result.output)
    if result.exit_code != 0 or any(isinstance(i, P.Corrupt) for i in items):
        raise TinydriftError(f"the firmware failed in QEMU (exit {result.exit_code}); its output ends "
                             f"{result.output[-200:]!r}")

    ident = model_id(model)
    detections = [i for i in items if isinstance(i, P.Detection)]
    inferences = [i for i in items if isinstance(i, P.Inference)]
    heartbeats = [i for i in items if isinstance(i, P.Heartbeat)]
    want_detections = expected_detections([pcm], model, ident)
    expected = expected_stream_inferences([pcm], model, config)
    want_inferences = [expected.inference_frame(i, ident) for i in range(len(expected))]
    twin = HeartbeatTwin(tuple(int(v) for v in config.score_drift))
    want_heartbeats = [h for h in (twin.add(f) for f in want_inferences) if h is not None]
    mismatched = 0
    for got, want in [*zip(detections, want_detections), *zip(inferences, want_inferences),
                      *zip(heartbeats, want_heartbeats)]:
        want.seq = got.seq
        if isinstance(want, P.Heartbeat):
            want.uptime_ms = got.uptime_ms
        mismatched += got != want
    mismatched += abs(len(detections) - len(want_detections)) + abs(len(inferences) - len(want_inferences)) + \
        abs(len(heartbeats) - len(want_heartbeats))

    change_sample = len(before)
    ends = np.array([stream_end(i, model.stride) for i in range(len(inferences))])
    after_change = ends > change_sample
    wakes = np.array([d.wake for d in detections], bool)[:len(ends)]
    alarmed = np.array([(i.alarm_bits & ALARM_TYPES_MASK) != 0 for i in inferences], bool)
    new_alarm = alarmed & ~np.concatenate([[False], alarmed[:-1]])
    first = np.flatnonzero(new_alarm & after_change)
    outcome = WakewordDemoResult(
        model=model.name, change=change, seconds_before=len(before) / SAMPLE_RATE, seconds_after=len(after) / SAMPLE_RATE,
        inferences=len(inferences), mismatched_frames=int(mismatched),
        wakes_before=int(np.sum(wakes & ~after_change)), wakes_after=int(np.sum(wakes & after_change)),
        said_before=said_in(phrases[0], len(audio[0]), 0, len(before)),
        said_after=said_in(phrases[0], len(audio[0]), len(before), len(after)),
        false_alarms_before=int(np.sum(new_alarm & ~after_change)),
        first_alarm_after="+".join(alarm_names(inferences[first[0]].alarm_bits & ALARM_TYPES_MASK)) if first.size else None,
        delay_seconds=round(float(ends[first[0]] - change_sample) / SAMPLE_RATE, 1) if first.size else None)
    write_text(out_dir / "summary.json", json.dumps(asdict(outcome), indent=1))
    return outcome
