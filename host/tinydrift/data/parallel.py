"""Render a list of specs (clips, images) in chunks, across processes when asked."""

from __future__ import annotations

import multiprocessing
import signal

import numpy as np

CHUNK = 64  # specs per task: big enough to hide the pickling, small enough to move the progress bar


def _leave_interrupts_to_the_parent() -> None:
    """Ctrl-C reaches the whole process group: a worker killed by it mid-task can leave the
    pool's shutdown waiting for ever. Workers ignore it; the parent ends them (render_all).
    The CLI's SIGTERM/SIGHUP handler (raise SystemExit) came with the fork: a worker goes
    back to the default, so that the parent's terminate() ends it whatever it is doing."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def render_all(render_chunk, specs: list, workers: int, progress=None, chunk: int = CHUNK) -> list[np.ndarray]:
    """[render_chunk(chunk) for each chunk of `specs`], in order; `render_chunk` must be
    picklable (a module-level function or a functools.partial of one) when workers > 1.
    `progress(n)` is advanced by each finished chunk's length. A spec that takes long alone
    (a minute of audio) wants a smaller `chunk`."""
    chunks = [specs[i:i + chunk] for i in range(0, len(specs), chunk)]
    out = []

    def collect(results) -> None:
        for done, rendered in zip(chunks, results):
            out.append(rendered)
            if progress:
                progress(len(done))

    if workers <= 1 or len(chunks) <= 1:
        collect(map(render_chunk, chunks))
        return out
    pool = multiprocessing.Pool(min(workers, len(chunks)), initializer=_leave_interrupts_to_the_parent)
    try:
        collect(pool.imap(render_chunk, chunks))
    except BaseException:
        # Ctrl-C or a failed chunk: the chunks under way (a minute of audio can take long)
        # are not waited for.
        pool.terminate()
        raise
    # Done: the workers are told there is no more work and leave by themselves. terminate()
    # here (what leaving `with Pool()` does) once hung a drift bench for good: it takes the
    # task queue's lock to drain it, and a worker waiting on that lock never left.
    pool.close()
    pool.join()
    return out
