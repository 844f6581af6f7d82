"""Reference audio for a wake-word deployment, synthesized with espeak-ng: sessions of
background speech (other phrases, several voices), room noise, and now and then the wake
phrase, deterministic from a seed.

A session is one recording of one place: its own room noise (white, pink or brown, at its
own level), two or three talkers (voice and variant, pitch, speed) who take turns saying
everyday phrases with pauses between them, and the wake phrase said by one of them at a
given rate. Sessions are the groups the monitor's calibration resamples whole: a device
hears one place at a time. Speech and noise come from the keyword set's synthesis
(tinydrift.data.synth), rendered across processes as it is.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from tinydrift.atomic import atomic_path
from tinydrift.data.parallel import render_all
from tinydrift.data.synth import ENGLISH_VOICES, coloured_noise, espeak_variants, speak, split_variants
from tinydrift.frontend import SAMPLE_RATE

# Bump when the rendering changes, so cached sessions are rebuilt.
GENERATOR_VERSION = 1

# Everyday speech a voice satellite hears; some share sounds with the published wake words.
BACKGROUND_PHRASES = (
    "turn on the kitchen light", "what time is it", "okay", "hey there", "nabucco", "alex",
    "put the kettle on", "where are my keys", "good morning", "see you tomorrow", "thank you",
    "can you hear me", "the weather is nice today", "open the window please", "dinner is ready",
    "i will call you back", "okay let's go", "hey what's up", "my car is in the garage",
    "turn the music down", "set a timer", "jarvis", "a bunch of apples", "nobody knows",
)


# A session's room noise (its colour, its RMS level) and each utterance's peak level.
NOISES = ("white", "pink", "brown")
NOISE_DBFS = (-70, -40)
SPEECH_PEAK_DBFS = (-26.0, -6.0)


@dataclass(frozen=True)
class SessionSpec:
    """One session's audio, fully determined: everything random is drawn from `seed`."""

    wake_phrase: str
    seconds: float
    talkers: tuple  # ((voice, variant, pitch, speed), ...)
    noise: str
    noise_dbfs: float  # room noise RMS
    speech_peak_dbfs: tuple  # each utterance's peak drawn from this range
    wake_rate: float  # share of utterances that are the wake phrase
    seed: int
    # The room noise's own seed (None: drawn from `seed`, before the talk). Takes of one room
    # share it: coloured_noise scales each draw to its own RMS, and a brown draw's RMS is
    # nearly all below hearing, so two draws at one level differed by up to 21 dB in the
    # audible band; one draw, periodic over the session, loops seamlessly from take to take.
    noise_seed: int | None = None


def plan_sessions(wake_phrase: str, n_sessions: int, seconds: float, *, wake_rate: float = 0.1,
                  seed: int = 0, variants: list[str] | None = None,
                  voices: tuple[str, ...] = ENGLISH_VOICES) -> list[SessionSpec]:
    """`n_sessions` sessions of `seconds` each. Voices are the English ones (unless given:
    other languages' voices for an accent) with the keyword set's held-out variants (the ones
    its training never heard)."""
    rng = np.random.default_rng([seed, 14])
    variants = variants if variants is not None else split_variants(espeak_variants())["ref"]
    specs = []
    for _ in range(n_sessions):
        talkers = tuple((str(rng.choice(voices)), str(rng.choice(variants)), int(rng.integers(20, 80)),
                         int(rng.integers(120, 200))) for _ in range(int(rng.integers(2, 4))))
        specs.append(SessionSpec(wake_phrase=wake_phrase, seconds=float(seconds), talkers=talkers,
                                 noise=str(rng.choice(NOISES)),
                                 noise_dbfs=float(rng.uniform(*NOISE_DBFS)), speech_peak_dbfs=SPEECH_PEAK_DBFS,
                                 wake_rate=float(wake_rate), seed=int(rng.integers(2**31))))
    return specs


def take_seed(seed: int, take: int) -> int:
    """The seed of take `take` of the room whose session has `seed` (take 0: that session)."""
    return seed + 7919 * take


def room_takes(room: SessionSpec, takes: int) -> list[SessionSpec]:
    """`takes` sessions of one room: its own, then its talkers, noise and levels saying
    other utterances (take_seed) over the same noise draw."""
    return [room] + [replace(room, seed=take_seed(room.seed, take), noise_seed=room.seed) for take in range(1, takes)]


def lay_out_utterances(audio: np.ndarray, rng: np.random.Generator, next_utterance, peak_dbfs: tuple) -> list:
    """Say utterances one after another over `audio` (float, full scale 1; changed in place),
    from a random start, with pauses of 0.3-2 s, each scaled to a peak drawn from
    `peak_dbfs`: next_utterance() gives (samples, tag). Returns (start, end, tag) of each
    utterance said whole (one cut off by the session's end is not)."""
    n, said = len(audio), []
    position = int(rng.uniform(0.2, 1.0) * SAMPLE_RATE)
    while position < n:
        speech, tag = next_utterance()
        speech = speech / (np.abs(speech).max() + 1e-12) * 10 ** (rng.uniform(*peak_dbfs) / 20)
        end = min(n, position + len(speech))
        audio[position:end] += speech[:end - position]
        if end - position == len(speech):
            said.append((position, end, tag))
        position = end + int(rng.uniform(0.3, 2.0) * SAMPLE_RATE)
    return said


def _as_pcm(audio: np.ndarray) -> np.ndarray:
    return np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)


def render_session(spec: SessionSpec) -> tuple[np.ndarray, np.ndarray]:
    """int16 PCM of one session, and the sample ranges [n, 2] where the wake phrase is said."""
    rng = np.random.default_rng(spec.seed)
    n = int(spec.seconds * SAMPLE_RATE)
    noise_rng = rng if spec.noise_seed is None else np.random.default_rng(spec.noise_seed)
    audio = coloured_noise(spec.noise, n, noise_rng) * 10 ** (spec.noise_dbfs / 20)

    def next_phrase():
        voice, variant, pitch, speed = spec.talkers[int(rng.integers(len(spec.talkers)))]
        is_wake = rng.uniform() < spec.wake_rate
        phrase = spec.wake_phrase if is_wake else str(rng.choice(BACKGROUND_PHRASES))
        return speak(phrase, voice, variant, pitch, speed), is_wake

    wakes = [(start, end) for start, end, is_wake in lay_out_utterances(audio, rng, next_phrase, spec.speech_peak_dbfs)
             if is_wake]
    return _as_pcm(audio), np.array(wakes, dtype=np.int64).reshape(-1, 2)


def render_recorded_session(clips: list[np.ndarray], seconds: float, seed: int,
                            noise_seed: int | None = None) -> np.ndarray:
    """int16 PCM of a session in which recorded utterances (int16 clips, 16 kHz) are said in
    random order as render_session says its phrases, over a room noise drawn as plan_sessions
    draws it (from `noise_seed` if given, as SessionSpec.noise_seed: another take of a room).
    Each clip loses its leading and trailing digital zeros (padding) and its own DC
    offset: recordings from many phones carry offsets of up to a fifth of their peak (two
    Speech Commands speakers'), which a session of them would turn into a microphone that
    changes with every word; a device has one."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    noise_rng = rng if noise_seed is None else np.random.default_rng(noise_seed)
    audio = coloured_noise(str(noise_rng.choice(NOISES)), n, noise_rng) * 10 ** (noise_rng.uniform(*NOISE_DBFS) / 20)

    def next_clip():
        clip = np.asarray(clips[int(rng.integers(len(clips)))], dtype=np.float64)
        heard = np.flatnonzero(clip)
        clip = clip[heard[0]:heard[-1] + 1] if len(heard) else clip[:1]
        return clip - clip.mean(), None

    lay_out_utterances(audio, rng, next_clip, SPEECH_PEAK_DBFS)
    return _as_pcm(audio)


def _render_chunk(specs: list[SessionSpec]) -> list:
    return [render_session(s) for s in specs]


def synthesize_sessions(specs: list[SessionSpec], workers: int = 1, progress_factory=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """render_session of every spec, in order, across `workers` processes (a bar from
    `progress_factory(description, total)`, if given, counts the sessions done)."""
    progress = progress_factory("synthesizing sessions", len(specs)) if progress_factory and specs else None
    chunks = render_all(_render_chunk, specs, workers, progress=progress, chunk=1)
    return [session for chunk in chunks for session in chunk]


def session_digest(spec: SessionSpec) -> str:
    fields = asdict(spec)
    if fields["noise_seed"] is None:  # the digest sessions were cached under before the field
        del fields["noise_seed"]
    blob = json.dumps({"v": GENERATOR_VERSION, **fields}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cached_sessions(specs: list[SessionSpec], cache_dir: str | Path, workers: int = 1,
                    progress_factory=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """synthesize_sessions, each session kept in `cache_dir` under its spec's digest
    (espeak-ng takes about a second of CPU per 10 s of session)."""
    paths = [Path(cache_dir) / f"session-{session_digest(s)}.npz" for s in specs]
    missing = [i for i, path in enumerate(paths) if not path.exists()]
    for i, (pcm, wakes) in zip(missing, synthesize_sessions([specs[i] for i in missing], workers, progress_factory)):
        with atomic_path(paths[i]) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, pcm=pcm, wakes=wakes)
    out = []
    for path in paths:
        with np.load(path) as data:
            out.append((data["pcm"], data["wakes"]))
    return out


# The recorded speech a folder laid out as ../shared/data holds (see recorded_sessions).
FSDD_FOLDER = "fsdd"
SPEECH_COMMANDS_FOLDER = "speech_commands_v0.01_subset"
RECORDED_PER_SPEAKER = 2
RECORDED_MANY_VOICES = 6


def check_recorded_speech(data_root: str | Path) -> None:
    """A TinydriftError unless the folder holds fsdd/ or speech_commands_v0.01_subset/: said
    before a bench's minutes of work, not after them."""
    from tinydrift.errors import TinydriftError

    root = Path(data_root)
    if not any((root / folder).is_dir() for folder in (FSDD_FOLDER, SPEECH_COMMANDS_FOLDER)):
        raise TinydriftError(f"{root}: neither {FSDD_FOLDER}/ nor {SPEECH_COMMANDS_FOLDER}/ inside; give the folder "
                             "that holds them (../shared/data)")


def recorded_sessions(data_root: str | Path, seconds: float, seed: int, takes: int = 1) -> list[tuple[str, np.ndarray]]:
    """Sessions of real human speech, (name, int16 PCM) each, from a folder laid out as
    ../shared/data: two for each FSDD speaker (one person saying digits in a room; 8 kHz
    recordings, so band-limited) and six of the Speech Commands words (a room of many
    voices). Either sub-folder may be absent; a TinydriftError if both are. Each session is
    `takes` takes of `seconds` one after another over its room's one noise: the first the
    session a single take gives, the others its clips in other orders."""
    from tinydrift.data.wavfolder import load_fsdd, load_speech_commands

    check_recorded_speech(data_root)
    root = Path(data_root)
    pools = []
    if (root / FSDD_FOLDER).is_dir():
        fsdd = load_fsdd(root / FSDD_FOLDER)
        speakers = fsdd.domain["speaker"]
        for speaker in sorted(set(speakers.tolist())):
            pools += [(f"fsdd-{speaker}-{k}", fsdd.audio[speakers == speaker]) for k in range(RECORDED_PER_SPEAKER)]
    if (root / SPEECH_COMMANDS_FOLDER).is_dir():
        words = load_speech_commands(root / SPEECH_COMMANDS_FOLDER)
        pools += [(f"speech-commands-{k}", words.audio) for k in range(RECORDED_MANY_VOICES)]
    rng = np.random.default_rng([seed, 20])
    out = []
    for name, clips in pools:
        room = int(rng.integers(2**31))
        out.append((name, np.concatenate([render_recorded_session(list(clips), seconds, room) if take == 0 else
                                          render_recorded_session(list(clips), seconds, take_seed(room, take), room)
                                          for take in range(takes)])))
    return out
