"""Render a list of specs (clips, images) in chunks, across processes when asked."""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor

import numpy as np

CHUNK = 64  # specs per task: big enough to hide the pickling, small enough to move the progress bar


def _leave_interrupts_to_the_parent() -> None:
    """Ctrl-C reaches the whole process group: a worker killed by it mid-task can leave the
    pool's shutdown waiting for ever. Workers ignore it; the parent ends them (render_all)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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
        pool = ProcessPoolExecutor(min(workers, len(chunks)), initializer=_leave_interrupts_to_the_parent)
        # submit, not map: map's iterator cancels its futures when interrupted, and the pool's
        # thread then fails setting an error on them (a traceback on the way out)
        futures = [pool.submit(render_chunk, c) for c in chunks]
        results = (future.result() for future in futures)
    try:
        for chunk, rendered in zip(chunks, results):
            out.append(rendered)
            if progress:
                progress(len(chunk))
    except KeyboardInterrupt:
        if pool is not None:  # the chunks under way are not waited for (a minute of audio can take long)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
            pool.shutdown(wait=False)  # the pool, broken, fails what was pending
            pool = None
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return out
