"""Static arena planning: give every activation buffer an offset in one byte array so that
buffers alive at the same time never overlap, and the array is as small as we can make it.

A buffer lives from the step that writes it to the last step that reads it (steps are
operator indices, inclusive). Greedy placement in the manner of TFLite Micro's
GreedyMemoryPlanner (largest first, lowest offset that fits); we try a few orders and keep
the smallest arena.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    key: object  # caller's identifier
    size: int  # bytes
    first: int  # first step at which the buffer is alive
    last: int  # last step at which it is alive (inclusive)

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def _place(order: list[Buffer], alignment: int) -> dict[object, int]:
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[object, int] = {}
    for buffer in order:
        conflicts = sorted(
            ((offset, offset + other.size) for other, offset in placed if other.overlaps_in_time(buffer)),
        )
        candidate = 0
        for start, end in conflicts:
            if candidate + buffer.size <= start:
                break  # fits in the gap before this conflicting buffer
            candidate = max(candidate, _align(end, alignment))
        offsets[buffer.key] = candidate
        placed.append((buffer, candidate))
    return offsets


def arena_size(buffers: list[Buffer], offsets: dict[object, int], alignment: int = 16) -> int:
    end = max((offsets[b.key] + b.size for b in buffers), default=0)
    return _align(end, alignment)


def plan_arena(buffers: list[Buffer], alignment: int = 16) -> tuple[dict[object, int], int]:
    """Offsets (multiples of `alignment`) for every buffer, and the arena size in bytes."""
    if not buffers:
        return {}, 0
    orders = [
        sorted(buffers, key=lambda b: (-b.size, b.first)),  # TFLite Micro's order
        sorted(buffers, key=lambda b: (b.first, -b.size)),  # by time
        sorted(buffers, key=lambda b: (-(b.size * (b.last - b.first + 1)), b.first)),  # by area
    ]
    best: tuple[int, dict[object, int]] | None = None
    for order in orders:
        offsets = _place(order, alignment)
        size = arena_size(buffers, offsets, alignment)
        if best is None or size < best[0]:
            best = (size, offsets)
    size, offsets = best
    check_plan(buffers, offsets)
    return offsets, size


def check_plan(buffers: list[Buffer], offsets: dict[object, int]) -> None:
    """Raise AssertionError if two buffers alive at the same step share a byte."""
    for i, a in enumerate(buffers):
        for b in buffers[i + 1 :]:
            if a.overlaps_in_time(b) and a.size and b.size:
                a_start, b_start = offsets[a.key], offsets[b.key]
                if a_start < b_start + b.size and b_start < a_start + a.size:
                    raise AssertionError(f"arena plan overlaps {a.key} and {b.key}")
