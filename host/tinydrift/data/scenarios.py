"""Drift scenarios and unseen populations for the drift benchmark.

Two kinds of change, both deterministic from a seed:

- a *population* is a fresh espeak-ng sample whose synthesis parameters differ from the
  calibration set's: one voice only, a quiet or a noisy room, other filler words, another
  class mix (harmless controls the monitor must stay quiet on), or voices of other languages
  and speakers outside the training ranges of pitch and speed (harmful);
- a *transform* changes the PCM of a population's clips the way a device's world changes
  upstream of the model: gain, band limits (a cheap or a telephone microphone, an 8 kHz
  path), added white or babble noise, reverberation, and sensor faults (dead, stuck,
  DC offset, clipping, a very quiet but working microphone).

Label shift and concept drift change the class mix or the labels, not the audio.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from tinydrift.data.clipset import ClipSet
from tinydrift.data.labels import LABELS, SILENCE, UNKNOWN, UNKNOWN_WORDS
from tinydrift.data.wakeword_audio import SPEECH_COMMANDS_FOLDER
from tinydrift.data.synth import (
    ACCENT_VOICES,
    ENGLISH_VOICES,
    ClipSpec,
    domain_columns,
    espeak_variants,
    split_variants,
    synthesize,
)
from tinydrift.frontend import SAMPLE_RATE

# Filler words the data generator never speaks (for the `_unknown_` class of a control).
OTHER_FILLERS = ("apple", "paper", "water", "green", "table", "music", "window", "coffee", "river", "garden",
                 "pencil", "orange", "summer", "yellow", "castle", "mirror")


@dataclass(frozen=True)
class Population:
    """Synthesis parameters of one population of keyword clips (held-out voice variants)."""

    name: str
    voices: tuple = ENGLISH_VOICES
    pitch: tuple = (25, 75)
    speed: tuple = (120, 200)
    snr_db: tuple = (5.0, 30.0)
    peak_dbfs: tuple = (-26.0, -3.0)
    fillers: tuple = UNKNOWN_WORDS
    # relative clip counts per class (LABELS order); None: equal
    class_weights: tuple | None = None
    note: str = ""

    def plan(self, clips_per_class: int, seed: int, variants: list[str]) -> list[ClipSpec]:
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        weights = np.ones(len(LABELS)) if self.class_weights is None else np.asarray(self.class_weights, float)
        counts = np.maximum(1, np.round(weights / weights.mean() * clips_per_class)).astype(int)
        specs = []
        for label, name in enumerate(LABELS):
            for _ in range(counts[label]):
                word = str(rng.choice(self.fillers)) if name == UNKNOWN else name
                specs.append(ClipSpec(
                    word=word, label=label, voice=str(rng.choice(self.voices)), variant=str(rng.choice(variants)),
                    pitch=int(rng.integers(self.pitch[0], self.pitch[1] + 1)),
                    speed=int(rng.integers(self.speed[0], self.speed[1] + 1)),
                    peak_dbfs=float(rng.uniform(*self.peak_dbfs)), noise=str(rng.choice(("white", "pink", "brown"))),
                    snr_db=float(rng.uniform(*self.snr_db)), offset_frac=float(rng.uniform()),
                    noise_seed=int(rng.integers(2**31))))
        order = rng.permutation(len(specs))
        return [specs[i] for i in order]


def synthesize_population(population: Population, clips_per_class: int, seed: int, workers: int = 2,
                          progress=None) -> ClipSet:
    """The population's clips (held-out voice variants: calibration's `ref` hears the same
    variants, never these exact clips), features included."""
    variants = split_variants(espeak_variants())["ref"]
    specs = population.plan(clips_per_class, seed, variants)
    audio = synthesize(specs, workers, progress)
    clips = ClipSet(audio=audio, labels=np.array([s.label for s in specs], dtype=np.int16),
                    domain=domain_columns(specs, population.name))
    clips.ensure_features()
    return clips


# -- the populations ------------------------------------------------------------------------

DEPLOYMENT = Population("deployment", note="the calibration population's parameters, fresh clips")
CONTROLS = (
    Population("one_voice_en_us", voices=("en-us",), note="a device that hears one accent of English"),
    Population("one_voice_scotland", voices=("en-gb-scotland",), note="another single accent"),
    Population("quiet_room", snr_db=(22.0, 30.0), note="little background noise"),
    Population("noisy_room", snr_db=(5.0, 10.0), note="noise at the loud end of training's range"),
    Population("low_slow_speakers", pitch=(25, 40), speed=(120, 145), note="low, slow voices"),
    Population("high_fast_speakers", pitch=(60, 75), speed=(175, 200), note="high, fast voices"),
    Population("other_fillers", fillers=OTHER_FILLERS, note="unknown words the generator never speaks"),
    Population("keyword_heavy", class_weights=(0.5, 0.5, *([1.2] * 10)), note="fewer silences and fillers"),
)
HARMFUL_POPULATIONS = (
    Population("accent", voices=ACCENT_VOICES, note="other languages' voices speak the keywords"),
    Population("unseen_pitch_speed", pitch=(0, 15), speed=(230, 300), note="outside training's pitch and speed"),
)
# A room whose noise falls below any the training heard (30 dB under the speech at most): the
# input changed, the model does better. A device installed there stays quiet (the controls);
# one whose room turns this quiet after commissioning sees a change, which costs nothing.
QUIETER_ROOM = Population("quieter_room", snr_db=(32.0, 40.0), note="less noise than any room in training")


# -- PCM transforms -------------------------------------------------------------------------

def _rms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=-1, keepdims=True)) + 1e-9


def _to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def gain(pcm, rng, db):
    return _to_int16(pcm.astype(np.float64) * 10 ** (db / 20))


def _filter(pcm, kind, hz, order=6):
    from scipy.signal import butter, sosfiltfilt

    sos = butter(order, hz, btype=kind, fs=SAMPLE_RATE, output="sos")
    return _to_int16(sosfiltfilt(sos, pcm.astype(np.float64), axis=-1))


def lowpass(pcm, rng, hz):
    return _filter(pcm, "lowpass", hz)


def highpass(pcm, rng, hz):
    return _filter(pcm, "highpass", hz)


def bandpass(pcm, rng, low_high):
    return _filter(pcm, "bandpass", list(low_high), order=4)


def resample_8k(pcm, rng, _):
    """An 8 kHz path (down and up again): nothing above 4 kHz survives. Like every transform
    here it takes [n, samples] of any length: 1 s clips, or a wake-word bench's sessions."""
    from scipy.signal import resample_poly

    down = resample_poly(pcm.astype(np.float64), 1, 2, axis=-1)
    return _to_int16(resample_poly(down, 2, 1, axis=-1)[..., :pcm.shape[-1]])


def white_noise(pcm, rng, snr_db):
    x = pcm.astype(np.float64)
    noise = rng.standard_normal(x.shape) * _rms(x) * 10 ** (-snr_db / 20)
    return _to_int16(x + noise)


def babble(pcm, rng, snr_db, talkers: int = 4):
    """Other clips of the same set mixed in: a room full of people."""
    x = pcm.astype(np.float64)
    others = sum(np.roll(x, k * 997, axis=0)[rng.permutation(len(x))] for k in range(1, talkers + 1))
    return _to_int16(x + others / _rms(others) * _rms(x) * 10 ** (-snr_db / 20))


def reverb(pcm, rng, rt60_s):
    """Convolution with an exponentially decaying noise tail (a synthetic room response)."""
    from scipy.signal import fftconvolve

    n = int(rt60_s * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 1.0
    ir /= np.sqrt(np.sum(ir**2))
    x = pcm.astype(np.float64)
    wet = fftconvolve(x, ir[None, :], axes=-1)[:, :x.shape[-1]]
    return _to_int16(wet / _rms(wet) * _rms(x))


def dead(pcm, rng, _):
    return np.zeros_like(pcm)


def dropouts(items, rng, share):
    """A sensor that fails on and off: each item (a clip, one inference's audio: digital
    silence; a camera frame: black) all zeros with probability `share`, the others as they
    were."""
    out = items.copy()
    out[rng.random(len(items)) < share] = 0
    return out


def dead_stretches(pcm, rng, share, seconds: float = 0.5):
    """A microphone that drops out for a moment: each clip, with probability `share`, loses a
    stretch of `seconds` (digital silence) at a random place in it, the rest as it was. No
    clip dies whole: what is lost is part of an inference's blocks, wherever it falls."""
    out = pcm.copy()
    length = min(int(round(seconds * SAMPLE_RATE)), pcm.shape[-1])
    hit = np.flatnonzero(rng.random(len(pcm)) < share)
    starts = rng.integers(0, pcm.shape[-1] - length + 1, size=len(hit))
    lost = np.arange(pcm.shape[-1])[None, :] - starts[:, None]
    out[hit] = np.where((lost >= 0) & (lost < length), 0, pcm[hit])
    return out


def stuck(pcm, rng, level):
    return np.full_like(pcm, int(level))


def dc_offset(pcm, rng, level):
    return _to_int16(pcm.astype(np.float64) + level)


def clipping(pcm, rng, db):
    return gain(pcm, rng, db)  # _to_int16 saturates: hard clipping


def quiet_microphone(pcm, rng, db):
    """A working but very quiet microphone: speech and room scaled down, plus its own faint
    self-noise (a real microphone is never digitally silent)."""
    x = pcm.astype(np.float64) * 10 ** (db / 20)
    return _to_int16(x + rng.normal(0.0, 1.5, x.shape))


def clicks(pcm, rng, per_second):
    """A crackling connector or a scratched capsule: clicks of 2-5 ms (a decaying burst of
    either sign, a half to a whole full scale) at random places, `per_second` a second on
    average, over whatever else the clip holds."""
    x = pcm.astype(np.float64)
    n, length = x.shape
    counts = rng.poisson(per_second * length / SAMPLE_RATE, size=n)
    for row, count in enumerate(counts):
        for _ in range(count):
            width = int(rng.integers(int(0.002 * SAMPLE_RATE), int(0.005 * SAMPLE_RATE) + 1))
            start = int(rng.integers(0, max(1, length - width)))
            burst = rng.standard_normal(width) * np.exp(-4.0 * np.arange(width) / width)
            peak = rng.uniform(16000.0, 32767.0) * rng.choice((-1.0, 1.0))
            x[row, start:start + width] += burst / np.max(np.abs(burst)) * peak
    return _to_int16(x)


def gain_pumping(pcm, rng, depth_db, period_s: float = 2.0):
    """An automatic gain control that pumps: the gain swings `depth_db` either way and back
    every `period_s`, each clip at a random point of the swing."""
    t = np.arange(pcm.shape[-1]) / SAMPLE_RATE
    phase = rng.uniform(0.0, 2 * np.pi, size=(len(pcm), 1))
    return _to_int16(pcm.astype(np.float64) * 10 ** (depth_db * np.sin(2 * np.pi * t / period_s + phase) / 20))


def wind_bursts(pcm, rng, snr_db):
    """Wind on the capsule: rumble below 150 Hz, in a burst over a random third to two
    thirds of each clip (rising and falling in 50 ms), `snr_db` under the clip's level."""
    from scipy.signal import butter, sosfilt

    x = pcm.astype(np.float64)
    n, length = x.shape
    rumble = sosfilt(butter(4, 150.0, btype="lowpass", fs=SAMPLE_RATE, output="sos"), rng.standard_normal(x.shape))
    width = (rng.uniform(1 / 3, 2 / 3, size=n) * length).astype(int)
    start = (rng.uniform(0.0, 1.0, size=n) * (length - width)).astype(int)
    at = np.arange(length)[None, :] - start[:, None]
    ramp = 0.05 * SAMPLE_RATE
    envelope = np.clip(np.minimum(at, width[:, None] - at) / ramp, 0.0, 1.0)
    burst = rumble * envelope
    level = _rms(x) / np.sqrt(np.mean(burst ** 2, axis=-1, keepdims=True) + 1e-12)
    return _to_int16(x + burst * level * 10 ** (-snr_db / 20))


@dataclass(frozen=True)
class Scenario:
    """One drift: a population (default: the deployment one) and an optional transform of its
    PCM or change of its labels or class mix; `expected` is the alarm a good monitor raises
    (None: the change is harmless and no alarm is right)."""

    name: str
    family: str  # data, upstream, sensor, label, concept, control
    expected: str | None
    population: Population = DEPLOYMENT
    transform: str | None = None
    severity: object = None
    class_weights: tuple | None = None  # label shift: resample the stream's classes
    # the deployment's own class mix, before the change and after (a room that hears mostly
    # fillers): what it heard before is what the host's accuracy estimate reads against
    room_weights: tuple | None = None
    # real speech after the change: a folder of ../shared/data in the Speech Commands layout,
    # in its own class mix (the drift bench leaves the scenario out, and says so, without it)
    recordings: str | None = None
    label_map: dict = field(default_factory=dict)  # concept drift: true label -> new label
    gradual: int = 0  # inferences over which the change fades in (0: abrupt)
    hold: bool = False  # each stream shows one drifted input over and over (a stuck camera)

    @property
    def mix_after(self) -> tuple | None:
        """The class mix after the change: a label shift's, else the room's own (None: the pool's)."""
        return self.class_weights or self.room_weights

    def apply(self, clips: ClipSet, seed: int) -> ClipSet:
        """The drifted version of a population's clips (features recomputed)."""
        if self.transform is None and not self.label_map:
            return clips
        rng = np.random.default_rng([seed, zlib.crc32(self.name.encode())])
        audio = clips.audio if self.transform is None else TRANSFORMS[self.transform](clips.audio, rng, self.severity)
        labels = clips.labels.copy()
        for old, new in self.label_map.items():
            labels[clips.labels == LABELS.index(old)] = LABELS.index(new)
        out = ClipSet(audio=audio, labels=labels, domain=dict(clips.domain))
        if self.transform is None:
            out.features = clips.features
        out.ensure_features()
        return out


# The severities `tinydrift data drift --severity` takes per transform (low, high, what):
# beyond them a transform fails (a cut-off at or past 8 kHz) or changes nothing a device
# could tell from a dead microphone.
SEVERITY_RANGES = {
    "gain": (-60.0, 60.0, "a gain of -60 to 60 dB"),
    "lowpass": (50.0, 7900.0, "a cut-off of 50 to 7,900 Hz"),
    "highpass": (50.0, 7900.0, "a cut-off of 50 to 7,900 Hz"),
    "white_noise": (-20.0, 60.0, "an SNR of -20 to 60 dB"),
    "babble": (-20.0, 60.0, "an SNR of -20 to 60 dB"),
    "reverb": (0.05, 5.0, "a reverberation time of 0.05 to 5 s"),
    "stuck": (-32768.0, 32767.0, "a sample value of -32,768 to 32,767"),
    "dc_offset": (-32768.0, 32767.0, "an offset of -32,768 to 32,767"),
    "clipping": (0.5, 60.0, "a gain into clipping of 0.5 to 60 dB"),
    "quiet_microphone": (-60.0, -1.0, "a gain of -60 to -1 dB"),
    "dropouts": (0.01, 1.0, "a share of 0.01 to 1 of the clips"),
    "dead_stretches": (0.01, 1.0, "a share of 0.01 to 1 of the clips"),
    "clicks": (0.1, 50.0, "0.1 to 50 clicks a second"),
    "gain_pumping": (0.5, 30.0, "a swing of 0.5 to 30 dB either way"),
    "wind_bursts": (-20.0, 60.0, "an SNR of -20 to 60 dB"),
}

TRANSFORMS = {
    "gain": gain, "lowpass": lowpass, "highpass": highpass, "bandpass": bandpass, "resample_8k": resample_8k,
    "white_noise": white_noise, "babble": babble, "reverb": reverb, "dead": dead, "dropouts": dropouts,
    "dead_stretches": dead_stretches, "stuck": stuck,
    "dc_offset": dc_offset, "clipping": clipping, "quiet_microphone": quiet_microphone,
    "clicks": clicks, "gain_pumping": gain_pumping, "wind_bursts": wind_bursts,
}

_KEYWORDS_EQUAL = (1.0,) * len(LABELS)


def _weights(**changes) -> tuple:
    w = list(_KEYWORDS_EQUAL)
    for name, factor in changes.items():
        w[LABELS.index(name)] *= factor
    return tuple(w)


SCENARIOS = (
    # upstream changes: reported as DATA_DRIFT whatever they cost
    Scenario("gain_down_20db", "upstream", "DATA_DRIFT", transform="gain", severity=-20.0),
    Scenario("gain_up_12db", "upstream", "DATA_DRIFT", transform="gain", severity=12.0),
    # a microphone a few dB off: 0.7 of the loudness's spread between one window and the next
    Scenario("gain_down_6db", "upstream", "DATA_DRIFT", transform="gain", severity=-6.0),
    Scenario("gain_up_6db", "upstream", "DATA_DRIFT", transform="gain", severity=6.0),
    Scenario("cheap_mic_lowpass_2k", "upstream", "DATA_DRIFT", transform="lowpass", severity=2000.0),
    Scenario("highpass_800", "upstream", "DATA_DRIFT", transform="highpass", severity=800.0),
    Scenario("telephone_band", "upstream", "DATA_DRIFT", transform="bandpass", severity=(300.0, 3400.0)),
    Scenario("path_8khz", "upstream", "DATA_DRIFT", transform="resample_8k"),
    Scenario("white_noise_10db", "upstream", "DATA_DRIFT", transform="white_noise", severity=10.0),
    Scenario("white_noise_0db", "upstream", "DATA_DRIFT", transform="white_noise", severity=0.0),
    Scenario("babble_5db", "upstream", "DATA_DRIFT", transform="babble", severity=5.0),
    Scenario("reverb_0.8s", "upstream", "DATA_DRIFT", transform="reverb", severity=0.8),
    Scenario("gain_down_20db_gradual", "upstream", "DATA_DRIFT", transform="gain", severity=-20.0, gradual=300),
    # kinds of change the monitor's design never saw (added after a trial pushed them through)
    Scenario("clicks_1_per_s", "upstream", "DATA_DRIFT", transform="clicks", severity=1.0),
    Scenario("agc_pumping_6db", "upstream", "DATA_DRIFT", transform="gain_pumping", severity=6.0),
    Scenario("wind_bursts_0db", "upstream", "DATA_DRIFT", transform="wind_bursts", severity=0.0),
    # a device installed where it hears five times the training set's share of fillers, then noise
    Scenario("white_noise_0db_filler_room", "upstream", "DATA_DRIFT", transform="white_noise", severity=0.0,
             room_weights=_weights(**{UNKNOWN: 5.0})),
    # new speakers: the model's accuracy falls
    Scenario("accent", "data", "DATA_DRIFT", population=HARMFUL_POPULATIONS[0]),
    Scenario("unseen_pitch_speed", "data", "DATA_DRIFT", population=HARMFUL_POPULATIONS[1]),
    # real people after synthetic voices: Speech Commands recordings, a third of them keywords
    Scenario("real_speech", "data", "DATA_DRIFT", recordings=SPEECH_COMMANDS_FOLDER),
    # the sensor
    Scenario("dead_microphone", "sensor", "SENSOR_FAULT", transform="dead"),
    # dead for a second here and there, never long enough for the stuck fault's 4 s
    Scenario("microphone_dropouts_30", "sensor", "SENSOR_FAULT", transform="dropouts", severity=0.3),
    # dead half a second in every other clip, wherever it falls: no inference is dead whole
    Scenario("microphone_dead_half_seconds_50", "sensor", "SENSOR_FAULT", transform="dead_stretches", severity=0.5),
    Scenario("stuck_microphone", "sensor", "SENSOR_FAULT", transform="stuck", severity=1200),
    Scenario("dc_offset", "sensor", "SENSOR_FAULT", transform="dc_offset", severity=6000.0),
    Scenario("clipping_30db", "sensor", "SENSOR_FAULT", transform="clipping", severity=30.0),
    # the class mix
    Scenario("unknown_x5", "label", "LABEL_SHIFT", class_weights=_weights(**{UNKNOWN: 5.0})),
    Scenario("silence_x5", "label", "LABEL_SHIFT", class_weights=_weights(**{SILENCE: 5.0})),
    Scenario("yes_knocked_out", "label", "LABEL_SHIFT", class_weights=_weights(yes=0.0)),
    # concept drift: labels move, inputs do not; only label feedback can see it
    Scenario("labels_remapped", "concept", "ERROR_RATE", label_map={"yes": "no", "no": "yes", "up": "down",
                                                                    "down": "up", "left": "right", "right": "left"}),
    # a working microphone 24 dB quieter: an upstream change, not a sensor fault
    Scenario("quiet_but_working_microphone", "upstream", "DATA_DRIFT", transform="quiet_microphone", severity=-24.0),
    # the room itself changes after commissioning: a device moved into two of the controls'
    # populations (installed there, it stays quiet), and into a room quieter than training's
    Scenario("moved_to_noisy_room", "upstream", "DATA_DRIFT", population=CONTROLS[3]),
    Scenario("moved_to_quieter_room", "upstream", "DATA_DRIFT", population=QUIETER_ROOM),
    # harmless populations: no alarm is right (their false-alarm rate is measured instead)
    *(Scenario(p.name, "control", None, population=p) for p in CONTROLS),
)


def scenario(name: str) -> Scenario:
    for s in SCENARIOS:
        if s.name == name:
            return s
    raise KeyError(name)


def with_severity(s: Scenario, severity) -> Scenario:
    return replace(s, name=f"{s.transform}_{severity}", severity=severity)
