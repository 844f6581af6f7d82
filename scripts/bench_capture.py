#!/usr/bin/env python3
"""Measure the host side of the log: parse rate (protocol.bench_parse) and end-to-end capture
rate into SQLite over a local TCP socket, with commits per read at synchronous=NORMAL
(survives a killed process) and FULL (survives power loss).

    .venv/bin/python scripts/bench_capture.py [--frames 100000]
"""

from __future__ import annotations

import argparse
import random
import socket
import tempfile
import threading
import time
from pathlib import Path

from tinydrift.link import protocol as P
from tinydrift.logbook.capture import capture


def _serve(stream: bytes, server: socket.socket) -> None:
    conn, _ = server.accept()
    conn.sendall(stream)
    conn.shutdown(socket.SHUT_WR)  # FIN, then wait for the host to hang up: no RST, no loss
    while conn.recv(4096):
        pass
    conn.close()
    server.close()


def bench_capture(n: int, durable: bool) -> tuple[float, int, int]:
    """Capture n INFERENCE frames sent as fast as TCP allows; return (frames/s, stored, commits)."""
    rng = random.Random(2)
    model_id = rng.randbytes(8)
    stream = b"".join(P.encode(P.typical_inference(i, i, model_id, rng)) for i in range(n))
    stream += P.encode(P.Bye(n, 0, n))
    server = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=_serve, args=(stream, server), daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        commits = [0]

        def count(_stats):
            commits[0] += 1

        start = time.perf_counter()
        summary = capture(f"socket://127.0.0.1:{server.getsockname()[1]}", db, durable=durable,
                          progress=count, progress_interval=0)
        elapsed = time.perf_counter() - start
    return summary.stats.frames / elapsed, summary.stats.frames, commits[0]


def bench_commit(n: int, durable: bool) -> float:
    """Seconds per one-frame transaction: the cost when every read holds a single frame."""
    from tinydrift.logbook.capture import CaptureStats, _counters
    from tinydrift.logbook.store import CaptureStore, frame_row

    rng = random.Random(3)
    frames = [P.decode(P.encode(P.typical_inference(i, i, b"12345678", rng))) for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        store = CaptureStore(Path(tmp) / "commit.db", durable=durable)
        session = store.start_session("bench", None, None)
        counters = _counters(CaptureStats())
        start = time.perf_counter()
        for f in frames:
            store.commit(session, [frame_row(session, 0.0, f, False)], [], [], [], counters)
        elapsed = time.perf_counter() - start
        store.close()
    return elapsed / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100_000)
    args = parser.parse_args()
    print(f"parse: {P.bench_parse(args.frames):,.0f} frames/s (target >= 50,000)")
    for durable in (False, True):
        rate, stored, commits = bench_capture(args.frames, durable)
        mode = "FULL (fsync per commit)" if durable else "NORMAL"
        print(f"capture to SQLite, synchronous={mode}: {rate:,.0f} frames/s, {stored} stored "
              f"(of {args.frames + 1}), {commits} commits")
        per_commit = bench_commit(2000, durable)
        print(f"  one frame per commit: {per_commit * 1e6:,.0f} us per commit ({1 / per_commit:,.0f} commits/s)")


if __name__ == "__main__":
    main()
