"""No-drift streams for calibration: block bootstrap over whole recordings or speakers, and
running the twin over many streams at once."""

from __future__ import annotations

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.monitor.config import MonitorConfig
from tinydrift.monitor.twin import MonitorTwin


def bootstrap_indices(
    groups: np.ndarray,
    n_streams: int,
    length: int,
    rng: np.random.Generator,
    *,
    block_length: int | None = None,
    keep_order: bool = False,
    population: int | None = None,
    pool: np.ndarray | None = None,
    session_length: int | None = None,
    each_group: bool = False,
) -> np.ndarray:
    """Sample indices [n_streams, length] into the data, built from whole groups drawn with
    replacement (uniformly over groups), one after another.

    Drawing whole recordings/speakers keeps what makes consecutive inferences correlated
    (the same speaker, microphone, room), which cuts ARL0. Within a drawn
    group the samples come in a fresh random order, unless keep_order (for data that is a
    genuine time series): replaying each group in its one stored order would make the
    alarm rate hinge on the few orderings a small data set happens to contain. With
    block_length, each draw takes at most that many samples of the group. With
    population, each stream draws only from its own `population` groups (picked with
    replacement): a device used by a few speakers, or a held-out set of that many groups.
    With pool (positions into the sorted unique group ids, repeats allowed), every stream
    draws from those groups only: e.g. a bootstrap resample standing for another finite
    sample of the same population. With session_length, every draw is that many samples of
    its group, with replacement: one speaker talking for a while, longer than the few clips
    a data set holds per speaker (block_length, keep_order and population do not apply).
    With each_group (population 1, no pool), stream b draws from group b mod the number of
    groups (in the order of their ids) instead of a random one: every group gets the same
    share of the streams when n_streams is a multiple of the groups, so a rate per group can
    be read off the streams and no group's weight is left to chance."""
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.size == 0:
        raise TinydriftError("groups must be a non-empty vector with one group id per sample")
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    sizes = np.bincount(inverse)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    if pool is not None:
        pool = np.asarray(pool, dtype=np.int64)
        if pool.ndim != 1 or pool.size == 0 or pool.min() < 0 or pool.max() >= len(sizes):
            raise TinydriftError(f"pool must list positions of the {len(sizes)} groups")
    if session_length is not None:
        chosen = np.arange(len(sizes)) if pool is None else pool
        n_sessions = -(-n_streams * length // int(session_length))
        g = chosen[rng.integers(0, len(chosen), n_sessions)]
        within = (rng.random((n_sessions, int(session_length))) * sizes[g][:, None]).astype(np.int64)
        flat = order[starts[g][:, None] + within].reshape(-1)[:n_streams * length]
        return flat.reshape(n_streams, length).astype(np.int32)
    if population is None:
        flat = _blocks(order, sizes, starts, np.arange(len(sizes)) if pool is None else pool, n_streams * length, rng, block_length, keep_order)
        return flat.reshape(n_streams, length).astype(np.int32)
    if each_group and (population != 1 or pool is not None):
        raise TinydriftError("each_group gives every stream one group in turn: population 1, no pool")
    out = np.zeros((n_streams, length), dtype=np.int32)
    in_turn = groups_in_turn(n_streams, len(sizes))
    for b in range(n_streams):
        if each_group:
            mine = in_turn[b:b + 1]
        elif pool is None:
            mine = rng.integers(0, len(sizes), int(population))
        else:
            mine = pool[rng.integers(0, len(pool), int(population))]
        out[b] = _blocks(order, sizes, starts, mine, length, rng, block_length, keep_order)
    return out


def groups_in_turn(n_streams: int, n_groups: int) -> np.ndarray:
    """Which group (a position among the sorted group ids) each stream hears with each_group."""
    return np.arange(n_streams) % n_groups


def _blocks(order, sizes, starts, pool, total, rng, block_length, keep_order) -> np.ndarray:
    """`total` sample indices from blocks of groups drawn uniformly from `pool`."""
    pieces = []
    have = 0
    while have < total:
        mean_len = sizes[pool].mean() if block_length is None else min(sizes[pool].mean(), block_length)
        n_blocks = int((total - have) / mean_len * 1.1) + 16
        g = pool[rng.integers(0, len(pool), n_blocks)]
        full = sizes[g]
        lens = full if block_length is None else np.minimum(full, block_length)
        full_ends = np.cumsum(full)
        block_of = np.repeat(np.arange(n_blocks), full)
        position = np.arange(full_ends[-1]) - (full_ends - full)[block_of]
        if keep_order:
            offsets = (rng.random(n_blocks) * (full - lens + 1)).astype(np.int64)
            within = position + offsets[block_of]
        else:
            # A random permutation of each drawn group: sort random keys within blocks.
            within = position[np.lexsort((rng.random(position.size), block_of))]
        take = position < lens[block_of]
        pieces.append(order[starts[g][block_of[take]] + within[take]])
        have += int(lens.sum())
    return np.concatenate(pieces)[:total]


def run_streams(
    config: MonitorConfig,
    summaries: np.ndarray,
    probs: np.ndarray,
    indices: np.ndarray | None = None,
    *,
    fields: tuple[str, ...] = ("raw", "z", "cusum", "alarms", "change_time", "alarm_time", "moved"),
) -> dict[str, np.ndarray]:
    """Run the twin over B streams and stack the chosen result fields over time.

    Either summaries [B, T, C] and probs [B, T, K] hold the streams, or summaries [N, C],
    probs [N, K] hold the samples and indices [B, T] pick them. Returns arrays [B, T, ...]."""
    if indices is None:
        b, t = summaries.shape[:2]
        pick = lambda s: (summaries[:, s], probs[:, s])  # noqa: E731
    else:
        b, t = indices.shape
        pick = lambda s: (summaries[indices[:, s]], probs[indices[:, s]])  # noqa: E731
    twin = MonitorTwin(config, b)
    full = any(f not in ("raw", "z", "cusum", "alarms", "t") for f in fields)
    out: dict[str, np.ndarray] = {}
    for s in range(t):
        result = twin.update(*pick(s), full=full)
        for name in fields:
            value = np.asarray(result[name])
            if name not in out:
                out[name] = np.zeros((b, t, *value.shape[1:]), dtype=np.int64)
            out[name][:, s] = value
    return out
