"""Static arena planning: give every activation buffer an offset in one byte array so that
buffers alive at the same time never overlap, and the array is as small as we can make it.

A buffer lives from the step that writes it to the last step that reads it (steps are
operator indices, inclusive). A buffer may be tied to another (`anchor`): its offset is the
anchor's plus `anchor_offset`, and the two may share bytes at the one step where the
anchor is read for the last time and the buffer written (a kernel running in place, see
model_lowering.InPlace), or, for a view, as long as both live. Tied buffers are placed
together, as one block.

Greedy placement in the manner of TFLite Micro's GreedyMemoryPlanner (largest first,
lowest offset that fits); we try a few orders and keep the smallest arena.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Buffer:
    key: object  # caller's identifier
    size: int  # bytes
    first: int  # first step at which the buffer is alive
    last: int  # last step at which it is alive (inclusive)
    anchor: object = None  # key of the buffer whose bytes this one overlays in place
    anchor_offset: int = 0  # this buffer's offset minus the anchor's (bytes, may be negative)
    view: bool = False  # the anchor's own bytes (a contiguous slice): shared for as long as both live

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


Block = list[tuple[Buffer, int]]  # buffers tied together, each with its offset from the block's start


def _blocks(buffers: list[Buffer]) -> list[Block]:
    by_key = {buffer.key: buffer for buffer in buffers}

    def head_and_offset(buffer: Buffer) -> tuple[object, int]:
        offset = 0
        while buffer.anchor is not None:
            offset += buffer.anchor_offset
            buffer = by_key[buffer.anchor]
        return buffer.key, offset

    grouped: dict[object, Block] = {}
    for buffer in buffers:
        head, offset = head_and_offset(buffer)
        grouped.setdefault(head, []).append((buffer, offset))
    blocks = []
    for members in grouped.values():
        low = min(offset for _, offset in members)
        blocks.append([(buffer, offset - low) for buffer, offset in members])
    return blocks


def _extent(block: Block) -> int:
    return max(offset + buffer.size for buffer, offset in block)


def _place(order: list[Block], alignment: int) -> dict[object, int]:
    """First fit: each block at the lowest aligned offset where none of its buffers meets a
    placed buffer alive at the same time."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[object, int] = {}
    for block in order:
        candidate = 0
        while True:
            needed = candidate
            for buffer, relative in block:
                start = candidate + relative
                for other, offset in placed:
                    if (buffer.size and other.size and other.overlaps_in_time(buffer)
                            and start < offset + other.size and offset < start + buffer.size):
                        # every offset below this one collides with `other`
                        needed = max(needed, _align(offset + other.size - relative, alignment))
            if needed == candidate:
                break
            candidate = needed
        for buffer, relative in block:
            offsets[buffer.key] = candidate + relative
            placed.append((buffer, candidate + relative))
    return offsets


def arena_size(buffers: list[Buffer], offsets: dict[object, int], alignment: int = 16) -> int:
    end = max((offsets[b.key] + b.size for b in buffers), default=0)
    return _align(end, alignment)


def plan_arena(buffers: list[Buffer], alignment: int = 16) -> tuple[dict[object, int], int]:
    """Offsets for every buffer, and the arena size in bytes. Offsets are multiples of
    `alignment` but for views, which sit where their bytes are; the anchor offsets of other
    buffers must be multiples of `alignment` too."""
    if not buffers:
        return {}, 0
    if any(b.anchor_offset % alignment for b in buffers if not b.view):
        raise ValueError(f"anchor offsets must be multiples of {alignment}")
    blocks = _blocks(buffers)

    def first(block: Block) -> int:
        return min(buffer.first for buffer, _ in block)

    orders = [
        sorted(blocks, key=lambda b: (-_extent(b), first(b))),  # TFLite Micro's order
        sorted(blocks, key=lambda b: (first(b), -_extent(b))),  # by time
        sorted(blocks, key=lambda b: (-sum(x.size * (x.last - x.first + 1) for x, _ in b), first(b))),  # by area
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


def peak_live_bytes(buffers: list[Buffer]) -> int:
    """The most bytes alive at one step, an in-place pair counted at the step they share by
    the span of the two: no placement of these buffers (in this operator order, with these
    ties) can do with less."""
    steps = {step for b in buffers for step in (b.first, b.last)}
    by_key = {b.key: b for b in buffers}
    peak = 0
    for step in steps:
        live = [b for b in buffers if b.first <= step <= b.last]
        total = sum(b.size for b in live)
        for b in live:
            anchor = by_key.get(b.anchor)
            if anchor is not None and b.view and anchor.first <= step <= anchor.last:
                total -= b.size  # inside the anchor's bytes
            elif anchor is not None and anchor.last == step == b.first:
                span = max(anchor.size, b.anchor_offset + b.size) - min(0, b.anchor_offset)
                total -= anchor.size + b.size - span
        peak = max(peak, total)
    return peak


def check_plan(buffers: list[Buffer], offsets: dict[object, int]) -> None:
    """Raise AssertionError if two buffers alive at the same step share a byte, other than a
    buffer and its anchor at the step where one hands over to the other, and views of the
    same bytes."""
    by_key = {b.key: b for b in buffers}

    def viewed(buffer: Buffer) -> object:  # the buffer whose bytes a chain of views shows
        while buffer.view:
            buffer = by_key[buffer.anchor]
        return buffer.key

    for i, a in enumerate(buffers):
        for b in buffers[i + 1 :]:
            if not (a.overlaps_in_time(b) and a.size and b.size):
                continue
            tied = ((b.anchor == a.key and a.last == b.first) or (a.anchor == b.key and b.last == a.first)
                    or viewed(a) == viewed(b))
            a_start, b_start = offsets[a.key], offsets[b.key]
            if not tied and a_start < b_start + b.size and b_start < a_start + a.size:
                raise AssertionError(f"arena plan overlaps {a.key} and {b.key}")
