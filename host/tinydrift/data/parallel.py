"""Render a list of specs (clips, images) in chunks, across processes when asked; or
measure a list of items (a bench's scenarios) one per task the same way (map_items)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import signal
import threading

import numpy as np

CHUNK = 64  # specs per task: big enough to hide the pickling, small enough to move the progress bar
_POLL_S = 0.5  # how often the parent looks for a worker that died without a word
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _leave_interrupts_to_the_parent() -> None:
    """Ctrl-C reaches the whole process group, and so may SIGTERM (a `timeout`, a service
    stop): workers ignore both and the parent, which unwinds on them, kills its workers
    (render_all). The CLI's SIGTERM/SIGHUP handler (raise SystemExit) came with the fork."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def _stop_signals_held():
    """A stop signal that comes while a worker is forked is acted on once they all are.
    Python runs fork's hooks (logging's lock) in the parent, and a signal handler that raises
    there has its exception dropped: a SIGTERM at that moment was lost and a drift bench ran
    on to its end. Here the handler only notes the signal; the one it replaced then runs."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return
    came: list[int] = []
    replaced = {signum: signal.signal(signum, lambda signum, _frame: came.append(signum)) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
        for signum in came[:1]:
            handler = replaced[signum]
            if callable(handler):
                handler(signum, None)  # the CLI's unwind (SystemExit), Python's KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


def _worker(parent: int, render_chunk, chunks: list, mine: range, results) -> None:
    from tinydrift.child import end_with_parent

    end_with_parent(parent)  # a parent killed outright (SIGKILL, the OOM killer) leaves no worker waiting
    _leave_interrupts_to_the_parent()
    for index in mine:
        try:
            results.put((index, render_chunk(chunks[index]), None))
        except Exception as exc:  # noqa: BLE001 - handed to the parent, which raises it
            try:
                pickle.dumps(exc)
            except Exception:  # noqa: BLE001 - the queue's thread could not send it
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            results.put((index, None, exc))


def render_all(render_chunk, specs: list, workers: int, progress=None, chunk: int = CHUNK) -> list[np.ndarray]:
    """[render_chunk(chunk) for each chunk of `specs`], in order. Workers are forked, so
    `render_chunk` and `specs` reach them as the parent holds them (a closure, large arrays
    shared until written); only what render_chunk returns is pickled back. `progress(n)` is advanced by each finished chunk's length. A spec that takes long alone
    (a minute of audio) wants a smaller `chunk`.

    Workers are plain processes, each given its share of the chunks: on Ctrl-C, SIGTERM or a
    failed chunk the parent kills them, and nothing it waits on can be held by a killed
    worker. (Leaving a multiprocessing.Pool through terminate() takes its task queue's lock
    first; a worker blocked on that lock, or killed holding it, hung a drift bench and a
    stopped demo.)"""
    chunks = [specs[i:i + chunk] for i in range(0, len(specs), chunk)]
    if workers <= 1 or len(chunks) <= 1:
        out = []
        for done in chunks:
            out.append(render_chunk(done))
            if progress:
                progress(len(done))
        return out
    # Each worker takes every n-th chunk: the chunks are alike, and no task queue is shared
    # that a killed worker could leave locked.
    n = min(workers, len(chunks))
    forked = multiprocessing.get_context("fork")
    results = forked.Queue()
    procs = [forked.Process(target=_worker, args=(os.getpid(), render_chunk, chunks,
                                                           range(k, len(chunks), n), results), daemon=True)
             for k in range(n)]
    rendered: list = [None] * len(chunks)
    try:
        with _stop_signals_held():
            for p in procs:
                p.start()
        for _ in chunks:
            while True:
                try:
                    index, value, error = results.get(timeout=_POLL_S)
                    break
                except queue.Empty:
                    dead = [p for p in procs if p.exitcode not in (None, 0)]
                    if dead:
                        raise RuntimeError(f"a render worker died (exit code {dead[0].exitcode})") from None
            if error is not None:
                raise error
            rendered[index] = value
            if progress:
                progress(len(chunks[index]))
        for p in procs:
            p.join()
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        for p in procs:
            if p.pid is not None:
                p.join()
        results.close()
        results.join_thread()
    return rendered


def map_items(measure, items: list, workers: int) -> list:
    """[measure(item) for item in items], in order, one item a task across `workers` forked
    processes: for items that each take seconds and share no state (a bench's scenarios,
    each drawing its streams from its own seed, so the figures do not depend on `workers`)."""
    done = render_all(lambda chunk: [measure(item) for item in chunk], items, workers, chunk=1)
    return [value for chunk in done for value in chunk]
