"""A set's drifted copy: one of the drift bench's scenarios (`tinydrift.data.scenarios` for
clips, `tinydrift.data.camera_scenarios` for images) applied to a whole clip or image set,
written as a set or as class folders of WAV or PNG files, to replay into a device or to
evaluate a model on (`tinydrift data drift`).

Only scenarios that change a given set apply: a transform of its audio or pixels, a
relabelling (concept drift), a new diagnostic sign, a changed class mix (a resample of the
set) or a held frame. A scenario of another population of speakers or plants (an accent, the
controls) is a set of its own: `tinydrift data kws` writes `accent.npz`. A gradual scenario's
set holds its full severity (the fade-in is a property of a stream, not of a set).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinydrift.data.clipset import ClipSet
from tinydrift.data.imageset import ImageSet
from tinydrift.errors import TinydriftError


def _scenarios(images: bool) -> tuple:
    from tinydrift.data import camera_scenarios, scenarios

    return camera_scenarios.SCENARIOS if images else scenarios.SCENARIOS


def _severity_ranges(images: bool) -> dict:
    from tinydrift.data import camera_scenarios, scenarios

    return camera_scenarios.SEVERITY_RANGES if images else scenarios.SEVERITY_RANGES


def applies(s) -> bool:
    """Whether the scenario changes a given set (not one of another population)."""
    return bool(s.transform or s.label_map or s.class_weights or s.hold or getattr(s, "new_sign", None))


def scenario_names(images: bool) -> list[str]:
    """The scenarios that change a set, a gradual one left out (its set is its abrupt twin's)."""
    return [s.name for s in _scenarios(images) if applies(s) and not s.gradual]


def find_scenario(name: str, images: bool, severity: float | None = None):
    """The scenario called `name` for clips (images=False) or images, at `severity` if given
    (only a scenario with one number for its severity takes another)."""
    kind = "an image" if images else "a clip"
    known = {s.name: s for s in _scenarios(images)}
    chosen = known.get(name)
    if chosen is None:
        other = {s.name for s in _scenarios(not images)}
        hint = (f"it is {'a camera' if not images else 'an audio'} scenario, for {'image' if not images else 'clip'} "
                "sets; " if name in other else "")
        raise TinydriftError(f"{name}: no such drift scenario for {kind} set ({hint}"
                             f"scenarios: {', '.join(scenario_names(images))})")
    if getattr(chosen, "recordings", None):
        raise TinydriftError(f"{name}: real recordings, not a change of a given set: give the folder itself to "
                             f"`tinydrift eval` or `tinydrift replay` (../shared/data/{chosen.recordings})")
    if not applies(chosen):
        raise TinydriftError(f"{name}: another population of {'plants' if images else 'speakers'}, not a change of a "
                             "given set" + ("; `tinydrift data kws` writes the accent split (accent.npz)"
                                            if not images else "") +
                             f" (scenarios that change a set: {', '.join(scenario_names(images))})")
    if severity is not None:
        if isinstance(chosen.severity, bool) or not isinstance(chosen.severity, (int, float)):
            raise TinydriftError(f"--severity: {name} takes no other severity (its own is "
                                 f"{chosen.severity if chosen.severity is not None else 'none'}); pick a scenario "
                                 "whose severity is one number (a gain in dB, a blur in pixels, ...)")
        low, high, what = _severity_ranges(images)[chosen.transform]
        if not low <= severity <= high:
            raise TinydriftError(f"--severity: {name} takes {what}, not {severity:g}")
        if low < 0 < high and chosen.severity * severity < 0:
            # a signed severity of the other sign is the opposite change, which the name would belie
            raise TinydriftError(f"--severity: {name}'s own severity is {chosen.severity:g} ({what}), and {severity:g} "
                                 f"is the opposite change: give {-severity:g}, or the scenario named for that "
                                 "direction")
        chosen = replace(chosen, name=f"{chosen.transform}_{severity:g}", severity=type(chosen.severity)(severity))
    return chosen


def drifted(data: ClipSet | ImageSet, scenario, seed: int) -> ClipSet | ImageSet:
    """`data` changed by `scenario`, as the drift bench changes a population after its change
    point: the same items (a changed class mix: as many, resampled), labels moved where the
    scenario moves them."""
    mix = scenario.mix_after  # a room's own mix: the set as that room hears it
    if mix:
        weights = np.asarray(mix, np.float64)[np.asarray(data.labels, np.int64)]
        if not weights.sum() > 0:
            raise TinydriftError(f"{scenario.name}: the set holds only classes the scenario knocks out")
        rng = np.random.default_rng([seed, zlib.crc32(scenario.name.encode())])
        pick = np.sort(rng.choice(len(data), size=len(data), p=weights / weights.sum()))
        data = data.select(pick)
    if getattr(scenario, "new_sign", None) is not None:
        missing = [a for a, _ in scenario.new_sign.where if a not in data.domain]
        if missing:
            raise TinydriftError(f"{scenario.name}: picks leaves by their recorded {', '.join(missing)}, which only "
                                 "the procedural leaves carry (`tinydrift data plant`); this set does not")
    out = scenario.apply(data, seed)
    if scenario.hold:  # a stuck camera: its first drifted frame, over and over
        out = out.select(np.zeros(len(out), np.int64))
    return out


def write_folder(data: ClipSet | ImageSet, out: Path) -> int:
    """Class folders of `out` holding one WAV (16 kHz mono 16-bit) or PNG per item, numbered in
    the set's order; written beside `out` first and moved into place whole. Returns the files."""
    from PIL import Image

    from tinydrift.data.labels import LABELS
    from tinydrift.data.wavfolder import write_wav

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise TinydriftError(f"{out}: already exists and is not an empty folder; give a new folder (or a .npz file)")
    out.parent.mkdir(parents=True, exist_ok=True)
    names = data.label_names if isinstance(data, ImageSet) else LABELS
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for k in range(len(data)):
            folder = staging / names[int(data.labels[k])]
            folder.mkdir(exist_ok=True)
            if isinstance(data, ImageSet):
                Image.fromarray(data.images[k]).save(folder / f"{k:05d}.png")
            else:
                write_wav(folder / f"{k:05d}.wav", data.audio[k])
        if out.exists():
            out.rmdir()  # empty (checked above)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return len(data)
