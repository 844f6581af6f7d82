"""Simulated devices: the frames a board sends, made on the host.

A device boots with a HELLO naming it (device id, boot count, model hash), then sends one
INFERENCE frame per inference with the values a quiet device sends (protocol's
typical_inference) and, every `heartbeat_interval` inferences, the HEARTBEAT that the app's
twin (HeartbeatTwin) computes from them: what a real board would send after those frames.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from tinydrift.app import HeartbeatTwin
from tinydrift.link import protocol as P

SCORE_FRAC_BITS = 12
N_SCORES_IN_USE = 5
WARNING = (8 << SCORE_FRAC_BITS,) * N_SCORES_IN_USE + (0,) * (P.N_SCORES - N_SCORES_IN_USE)
DRIFT = (16 << SCORE_FRAC_BITS,) * N_SCORES_IN_USE + (0,) * (P.N_SCORES - N_SCORES_IN_USE)


@dataclass
class SimulatedDevice:
    device_id: int
    boot_count: int = 1
    model_hash: bytes = bytes(range(32))
    heartbeat_interval: int = 10
    heartbeat_only: bool = False
    seed: int = 0
    seq: int = 0
    inferences: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _twin: HeartbeatTwin = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._twin = HeartbeatTwin(DRIFT, self.heartbeat_interval)

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) & 0xFFFFFFFF
        return seq

    def boot(self) -> list[P.Frame]:
        """Power on (again): seq and the monitor start over, and the HELLO says who it is."""
        self.seq, self.inferences = 0, 0
        self._twin.reset()
        return [P.Hello(self._next_seq(), self.model_hash, 0, 1, 0, 412, 12, 40, SCORE_FRAC_BITS,
                        N_SCORES_IN_USE, WARNING, DRIFT, self.device_id, self.boot_count)]

    def infer(self) -> list[P.Frame]:
        """The frames one inference makes the device send."""
        self.inferences += 1
        frame = P.typical_inference(0, self.inferences, self.model_hash[:P.MODEL_ID_BYTES], self._rng)
        out: list[P.Frame] = []
        if not self.heartbeat_only:
            frame.seq = self._next_seq()
            out.append(frame)
        beat = self._twin.add(frame)
        if beat is not None:
            beat.seq, beat.uptime_ms = self._next_seq(), self.inferences * 1000
            out.append(beat)
        return out

    def run(self, inferences: int) -> list[P.Frame]:
        """A boot and `inferences` inferences."""
        frames = self.boot()
        for _ in range(inferences):
            frames += self.infer()
        return frames
