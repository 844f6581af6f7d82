"""Render a list of specs (clips, images) in chunks, across processes when asked."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import numpy as np

CHUNK = 64  # specs per task: big enough to hide the pickling, small enough to move the progress bar


def render_all(render_chunk, specs: list, workers: int, progress=None, chunk: int = CHUNK) -> list[np.ndarray]:
    """[render_chunk(chunk) for each chunk of `specs`], in order; `render_chunk` must be
    picklable (a module-level function or a functools.partial of one) when workers > 1.
    `progress(n)` is advanced by each finished chunk's length. A spec that takes long alone
    (a minute of audio) wants a smaller `chunk`."""
    chunks = [specs[i:i + chunk] for i in range(0, len(specs), chunk)]
    out = []
    if workers <= 1 or len(chunks) <= 1:
        results = map(render_chunk, chunks)
        pool = None
    else:
        pool = ProcessPoolExecutor(min(workers, len(chunks)))
        results = pool.map(render_chunk, chunks)
    try:
        for chunk, rendered in zip(chunks, results):
            out.append(rendered)
            if progress:
                progress(len(chunk))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out
