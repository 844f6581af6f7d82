"""Names of the input summary's channels, in the order the firmware's summarize stages write
them, so that a moved-channel mask (bit c: summary channel c moved) reads as what moved:

- a keyword model (`td_summarize_frames` + `td_summarize_level`): the mean of each of the 40
  feature bands over the window (band 0 the lowest pitch), then its loudness and the loudness
  of its quietest 20 ms block;
- a wake-word model (td_app_stream.c): the 40 band means, the at-floor counts of band pairs,
  then loudness, spectral tilt and the quiet level;
- a camera model (`td_summarize_image`): each grid block's mean per colour, blocks row-major,
  then per colour the image's contrast (standard deviation), sharpness and crispness.
"""

from __future__ import annotations

COLOURS = ("red", "green", "blue")
BANDS = 40


def frames_channels() -> list[str]:
    return [f"band {k}" for k in range(BANDS)] + ["loudness", "quiet level"]


def stream_channels(floor_group: int = 2) -> list[str]:
    return ([f"band {k}" for k in range(BANDS)]
            + [f"bands {k}-{k + floor_group - 1} at floor" for k in range(0, BANDS, floor_group)]
            + ["loudness", "spectral tilt", "quiet level"])


def image_channels(grid: int) -> list[str]:
    rows = {0: "top", grid - 1: "bottom"} if grid > 1 else {0: "middle"}
    cols = {0: "left", grid - 1: "right"} if grid > 1 else {0: "middle"}

    def block(gy: int, gx: int) -> str:
        return f"{rows.get(gy, 'middle')}-{cols.get(gx, 'middle')}" if grid <= 3 else f"row {gy} col {gx}"

    means = [f"{block(gy, gx)} {colour}" for gy in range(grid) for gx in range(grid) for colour in COLOURS]
    return means + [f"{what} {colour}" for what in ("contrast", "sharpness", "crispness") for colour in COLOURS]


def channel_names(n: int, input_summary: dict | None = None) -> list[str] | None:
    """The names of n summary channels as `input_summary` (reference.json's) describes them;
    without it, the one layout the firmware writes n channels in (42 a keyword model's, 63 a
    wake-word model's, 3 grid^2 + 9 a camera model's). None when neither tells."""
    kind = (input_summary or {}).get("kind")
    grid = round((max(n - 9, 0) / 3) ** 0.5)  # a camera summary of n values: 3 grid^2 + 9
    if kind == "image":
        layouts = [image_channels(int(input_summary.get("grid", grid)))]
    elif kind in ("frames", "stream"):
        layouts = [frames_channels() if kind == "frames" else stream_channels()]
    else:
        layouts = [frames_channels(), stream_channels(), image_channels(grid)]
    return next((names for names in layouts if len(names) == n), None)


def moved_text(mask: int, names: list[str] | None) -> str:
    """"band 3, loudness" (or the channel numbers, when their names are not known), "none"."""
    moved = [c for c in range(64) if mask >> c & 1]
    if not moved:
        return "none"
    return ", ".join(names[c] if names is not None and c < len(names) else str(c) for c in moved)
