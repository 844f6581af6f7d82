"""Bit-exact Python twin of the firmware's drift monitor (firmware/lib/tinydrift/src/monitor).

`MonitorTwin` holds the state of B independent streams and advances all of them by one
inference per `update` call: the recursion over time is sequential, so the twin vectorizes
across channels and across streams instead. Every statement mirrors one in the C, in the
same order, on int64 values whose ranges the C keeps inside its own types; the results
are the same integers (tests/test_monitor_c.py compares them over many long streams).
"""

from __future__ import annotations

import numpy as np

from tinydrift.monitor.config import (
    ALARM_CONFIDENCE_DRIFT,
    ALARM_DATA_DRIFT,
    ALARM_ERROR_RATE,
    ALARM_LABEL_SHIFT,
    ALARM_SENSOR_FAULT,
    CENTRE_COMMISSION_SHIFT,
    CLIP_EWMA_SHIFT,
    CHANNEL_Z_MAX,
    COMMISSION_MIN_VAR_Q12,
    COMMISSION_DEAD_BITS,
    CUSUM_MAX,
    EWMA_EXTRA_BITS,
    MAX_SUMMARY,
    ONE_Q12,
    ONE_Q16,
    PROB_FRAC_BITS,
    SCORE_ALARM,
    SCORE_CONF,
    SCORE_COUNT,
    SCORE_ENTROPY,
    SCORE_LABEL,
    SCORE_MEAN,
    SCORE_VAR,
    SCORE_Z_MAX,
    SENSOR_CLIPPING,
    SENSOR_CONDITION_COUNT,
    SENSOR_DC_OFFSET,
    SENSOR_FAULT_SHIFT,
    SENSOR_IMAGE_PROBES,
    SENSOR_INPUT_MAX_BLOCKS,
    SENSOR_MAX_BLOCK,
    SENSOR_SILENCE,
    SENSOR_STUCK,
    SPREAD_BLOCK_SHIFT,
    SPREAD_PRIOR_BLOCKS,
    SUMMARY_FRAC_BITS,
    WARNING_SHIFT,
    Z_FRAC_BITS,
    MonitorConfig,
)
from tinydrift.monitor.fixed import UINT32_MAX, clamp, div_round, ewma_step, isqrt, round_shift, sat32

MASK_WORDS = (MAX_SUMMARY + 31) // 32

# Event kinds of `run_events` and of the C host shim (td_monitor_host.c).
EVENT_INFERENCE, EVENT_FEEDBACK, EVENT_SENSOR, EVENT_RESET, EVENT_IMAGE_SENSOR = range(5)

# One row per event. Inference rows:
INFERENCE_FIELDS = (
    ["kind", "t"]
    + [f"raw_{i}" for i in range(SCORE_COUNT)]
    + [f"z_{i}" for i in range(SCORE_COUNT)]
    + [f"cusum_{i}" for i in range(SCORE_COUNT)]
    + ["alarms", "alarm_time", "change_time"]
    + [f"moved_{w}" for w in range(MASK_WORDS)]
    + [f"moved_at_alarm_{w}" for w in range(MASK_WORDS)]
    + ["predicted", "confidence", "entropy_q16", "confidence_ewma_q16", "entropy_ewma_q16", "atc_accuracy_q16", "sensor_flags"]
)
FEEDBACK_FIELDS = ["kind", "labels", "errors", "p_q16", "s_q16", "alarms"]
SENSOR_FIELDS = ["kind", "mean", "variance", "clipped", "flags", "alarms"]
ROW_WIDTH = len(INFERENCE_FIELDS)

_UNIT_MAX16 = 65535

def cusum_step(cusum: np.ndarray, increment: np.ndarray, start: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """td_cusum_step: the CUSUM plus `increment`, held in 0..CUSUM_MAX, and the inference
    where it last left zero (`start`, set to `t` as it leaves)."""
    nxt = clamp(cusum + increment, 0, CUSUM_MAX)
    return nxt, np.where((cusum == 0) & (nxt > 0), t, start)


def summarize_frames(features: np.ndarray) -> np.ndarray:
    """td_summarize_frames on [..., n_frames, n_channels] int8: the per-channel mean over
    frames times 2^7, rounded half up, as int16."""
    features = np.asarray(features)
    if features.dtype != np.int8 or features.ndim < 2:
        raise ValueError(f"expected int8 [..., frames, channels], got {features.dtype} {features.shape}")
    n_frames = features.shape[-2]
    if not 1 <= n_frames <= 65535:
        raise ValueError(f"n_frames {n_frames} not in 1..65535")
    total = features.astype(np.int64).sum(axis=-2)
    return ((total * (1 << SUMMARY_FRAC_BITS) + n_frames // 2) // n_frames).astype(np.int16)


FLOOR = -128
SUMMARY_FLOOR_MAX_VALUES = 255


def summarize_floor(features: np.ndarray, group: int) -> np.ndarray:
    """td_summarize_floor on [..., n_frames, n_channels] int8: per group of `group` adjacent
    channels, the values at -128 over the frames, times 2^7, as int16."""
    features = np.asarray(features)
    if features.dtype != np.int8 or features.ndim < 2:
        raise ValueError(f"expected int8 [..., frames, channels], got {features.dtype} {features.shape}")
    n_frames, n_channels = features.shape[-2:]
    if group < 1 or n_channels % group or not 1 <= n_frames * group <= SUMMARY_FLOOR_MAX_VALUES:
        raise ValueError(f"{n_frames} frames of {n_channels} channels in groups of {group}: not countable")
    at_floor = (features == FLOOR).sum(axis=-2, dtype=np.int64)
    counts = at_floor.reshape(*at_floor.shape[:-1], n_channels // group, group).sum(axis=-1)
    return (counts << SUMMARY_FRAC_BITS).astype(np.int16)


SUMMARY_LEVEL_MAX_ENERGY = 1 << 48


def summarize_level(energy: np.ndarray) -> np.ndarray:
    """td_summarize_level on int64 energies (per inference, the sum over its sensor blocks of
    variance x samples): log2(energy + 1) x 2^7 by Mitchell's approximation (the top bit's
    position, then the next 7 bits of the mantissa), as int16."""
    energy = np.asarray(energy)
    if energy.dtype.kind not in "iu" or np.any(energy < 0):
        raise ValueError("energies are non-negative integers")
    x = np.minimum(energy.astype(np.int64), SUMMARY_LEVEL_MAX_ENERGY) + 1
    top = np.frexp(x.astype(np.float64))[1].astype(np.int64) - 1  # exact: x < 2^53
    fraction = np.where(top >= SUMMARY_FRAC_BITS, x >> np.maximum(top - SUMMARY_FRAC_BITS, 0),
                        x << np.maximum(SUMMARY_FRAC_BITS - top, 0)) & ((1 << SUMMARY_FRAC_BITS) - 1)
    return ((top << SUMMARY_FRAC_BITS) + fraction).astype(np.int16)


def sensed_energy(total: np.ndarray, total_sq: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Of sensor blocks of n samples with these sums (of samples, of squares): td_sensor's
    floored variance times n, what an app adds up for its loudness value, int64 [...]."""
    total, total_sq, n = (np.asarray(a, np.int64) for a in (total, total_sq, n))
    return (total_sq * n - total * total) // np.maximum(n * n, 1) * n


def window_energies(audio: np.ndarray, block: int) -> np.ndarray:
    """Of each clip of int16 [N, L], played as one window's new samples: sensor health's
    blocks of `block` samples (the last one short), their sensed_energy summed, and the
    quietest whole block's (a short one's, as if whole, only when it is all there is),
    int64 [N, 2]: what td_app_infer.c takes the loudness and the quiet level of."""
    x = np.asarray(audio, np.int64)
    full = x.shape[1] // block
    blocks = x[:, :full * block].reshape(len(x), full, block)
    energies = (block_window_energies(sensed_energy(blocks.sum(-1), (blocks * blocks).sum(-1), block)) if full
                else np.zeros((len(x), 2), np.int64))
    tail = x[:, full * block:]
    if tail.shape[1]:
        short = sensed_energy(tail.sum(-1), (tail * tail).sum(-1), tail.shape[1])
        energies[:, 0] += short
        if not full:
            energies[:, 1] = short // tail.shape[1] * block
    return energies


def block_window_energies(block_energies: np.ndarray) -> np.ndarray:
    """window_energies from the sensed_energy of each window's whole blocks [N, blocks]."""
    energies = np.asarray(block_energies, np.int64)
    return np.stack([energies.sum(axis=1), energies.min(axis=1)], axis=1)


def window_loudness(summaries: np.ndarray) -> int:
    """Where window_summary puts the loudness in summaries [N, C]: the last value but one."""
    return int(np.shape(summaries)[-1]) - 2


def window_quiet(summaries: np.ndarray) -> int:
    """Where window_summary puts the quiet level in summaries [N, C]: the last value."""
    return int(np.shape(summaries)[-1]) - 1


def window_summary(features: np.ndarray, energies: np.ndarray) -> np.ndarray:
    """td_app_infer's input summary of keyword windows, int16 [N, 42]: the 40 channel means
    of the features (summarize_frames, [N, 49, 40] int8), then the loudness of the window's
    new samples and of their quietest block (summarize_level of window_energies [N, 2]). The
    front end's gain control (PCAN) divides the level out of the features, so only these
    values see a quieter microphone, a louder room or noise filling the pauses."""
    levels = summarize_level(np.asarray(energies, np.int64).reshape(-1, 2)).reshape(-1, 2)
    return np.concatenate([summarize_frames(features), levels], axis=1)


def slope_energy(blocks: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """td_slope_energy: per block of int16 samples [..., n], the sum of its squared
    sample-to-sample differences, the first against its previous sample [...], as int64."""
    x = np.asarray(blocks, np.int64)
    before = np.asarray(previous, np.int64)[..., None]
    difference = np.diff(np.concatenate([before, x], axis=-1), axis=-1)
    return (difference * difference).sum(axis=-1)


def summarize_tilt(slope: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """td_summarize_tilt: the level of the slope energy minus the level of the energy, int16."""
    return (summarize_level(slope).astype(np.int32) - summarize_level(energy)).astype(np.int16)


SUMMARY_QUIET_SPAN = 16


def summarize_quiet(levels: np.ndarray, span: int = SUMMARY_QUIET_SPAN) -> np.ndarray:
    """td_summarize_quiet over one stream's levels [n] from its start: at each, the lowest of
    the last `span` levels, this one included (of all so far, when fewer), int16."""
    levels = np.asarray(levels, np.int16)
    quiet = levels.copy()
    for back in range(1, min(span, len(levels))):
        quiet[back:] = np.minimum(quiet[back:], levels[:-back])
    return quiet


IMAGE_CHANNELS = 3
CRISPNESS_FRAC_BITS = 12


def image_summary_length(grid: int) -> int:
    """TD_SUMMARY_IMAGE_LENGTH: grid^2 block means, a spread, a sharpness and a crispness, per colour channel."""
    return IMAGE_CHANNELS * grid * grid + 3 * IMAGE_CHANNELS


def summarize_image(pixels: np.ndarray, grid: int) -> np.ndarray:
    """td_summarize_image on [..., height, width, 3] int8: each block's per-channel mean on a
    grid x grid split, then each channel's standard deviation, then its mean absolute
    neighbour difference, all times 2^7 (means rounded half up, the deviation floored), then
    its crispness (sum of absolute second differences over that of first ones, Q12), int16."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.int8 or pixels.ndim < 3 or pixels.shape[-1] != IMAGE_CHANNELS:
        raise ValueError(f"expected int8 [..., height, width, {IMAGE_CHANNELS}], got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[-3:-1]
    if not (height * width <= 65535 and height * width >= 2 and 1 <= grid <= min(height, width)):
        raise ValueError(f"image {height}x{width} with grid {grid}: need 2..65535 pixels and 1 <= grid <= each side")
    v = pixels.astype(np.int64)
    one = 1 << SUMMARY_FRAC_BITS

    def scaled_mean(total, count):
        return (total * one + count // 2) // count

    rows = [(g * height // grid, (g + 1) * height // grid) for g in range(grid)]
    cols = [(g * width // grid, (g + 1) * width // grid) for g in range(grid)]
    blocks = [scaled_mean(v[..., y0:y1, x0:x1, :].sum(axis=(-3, -2)), (y1 - y0) * (x1 - x0))
              for y0, y1 in rows for x0, x1 in cols]
    n = height * width
    total = v.sum(axis=(-3, -2))
    scaled_var = div_round((n * (v * v).sum(axis=(-3, -2)) - total * total) << (2 * SUMMARY_FRAC_BITS), n * n)
    spread = isqrt(scaled_var)
    diff = (np.abs(np.diff(v, axis=-2)).sum(axis=(-3, -2)) + np.abs(np.diff(v, axis=-3)).sum(axis=(-3, -2)))
    sharpness = scaled_mean(diff, height * (width - 1) + (height - 1) * width)
    diff2 = (np.abs(np.diff(v, 2, axis=-2)).sum(axis=(-3, -2)) + np.abs(np.diff(v, 2, axis=-3)).sum(axis=(-3, -2)))
    crispness = np.where(diff == 0, 0, div_round(diff2 << CRISPNESS_FRAC_BITS, np.maximum(diff, 1)))
    return np.concatenate([*blocks, spread, sharpness, crispness], axis=-1).astype(np.int16)


def ddm_seed(cfg: MonitorConfig) -> dict[str, int]:
    """td_monitor_ddm_seed: the error-rate test's best (p, s) at a reset, as if its first
    ddm_min_labels labels had come at the reference's error rate (none, p 0: no best yet)."""
    if cfg.ddm_reference_q16 == 0:
        return {"ddm_p_min": 0, "ddm_s_min": 0}
    trials = cfg.ddm_min_labels + 2
    p = (cfg.ddm_reference_q16 * cfg.ddm_min_labels + ONE_Q16) // trials
    s = int(isqrt(np.int64((p * (ONE_Q16 - p)) // trials)))
    return {"ddm_p_min": p, "ddm_s_min": s}


class MonitorTwin:
    """The monitor state of `n_streams` independent streams, advanced together."""

    def __init__(self, config: MonitorConfig, n_streams: int = 1):
        self.config = config.validate()
        self.n_streams = int(n_streams)
        c = config
        self._ref_mean = c.ref_mean.astype(np.int64)
        self._inv_std = c.inv_std_q28.astype(np.int64)
        # Whitening as float64 BLAS products: every partial sum is an integer below 2^47,
        # exact in a double whatever the summation order, so the result equals the C's.
        self._whiten = None if c.whiten_q12 is None else c.whiten_q12.astype(np.float64).T.copy()
        self._prior = c.prior_q16.astype(np.int64)
        self._inv_prior = c.inv_prior_q8.astype(np.int64)
        self._entropy = c.entropy_q16.astype(np.int64)
        self._offset = c.score_offset.astype(np.int64)
        self._gain = c.score_gain_q16.astype(np.int64)
        self._k = c.score_k.astype(np.int64)
        self._warning = c.score_warning.astype(np.int64)
        self._drift = c.score_drift.astype(np.int64)
        self._limit = c.score_limit.astype(np.int64)
        self._spread_ref = c.score_spread_ref.astype(np.int64)
        self._spread_centre = c.score_spread_centre.astype(np.int64)
        self._score_alarm = np.array(SCORE_ALARM, dtype=np.int64)
        self._persist = c.persist_blocks.astype(np.int64)
        self._pending_conditions = int(sum(1 << i for i in range(SENSOR_CONDITION_COUNT) if self._persist[i] > 0))
        self._enabled = np.array([(c.enabled_scores >> i) & 1 == 1 for i in range(SCORE_COUNT)])
        channels = np.arange(c.n_summary)
        self._bit_weights = (np.int64(1) << (channels % 32)).astype(np.int64)
        self._word_of = channels // 32
        self._arange_classes = np.arange(c.n_classes)
        self.reset()

    # -- state ---------------------------------------------------------------------------

    # What td_monitor_reset keeps: the long-run spread learned (only td_monitor_init clears it).
    SPREAD_KEPT = ("spread", "spread_gain", "spread_blocks")

    def reset(self, streams: np.ndarray | None = None) -> None:
        """td_monitor_reset for all streams, or for those where `streams` (bool[B]) is set;
        the first call, from the constructor, is td_monitor_init."""
        fresh = self._fresh_state()
        if not hasattr(self, "t"):
            self.__dict__.update(fresh)
            return
        streams = np.ones(self.n_streams, bool) if streams is None else np.asarray(streams, dtype=bool)
        for name, value in fresh.items():
            if name not in self.SPREAD_KEPT:
                getattr(self, name)[streams] = value[streams]

    def _fresh_state(self) -> dict[str, np.ndarray]:
        b, c, k = self.n_streams, self.config.n_summary, self.config.n_classes
        cfg = self.config
        z = lambda *shape: np.zeros((b, *shape), dtype=np.int64)  # noqa: E731
        return {
            "t": z(),
            "mean_ewma": z(c),
            "loudness_cusum": z(2),
            "loudness_start": z(2),
            "quiet_cusum": z(),
            "quiet_start": z(),
            "sq_ewma": np.full((b, c), ONE_Q12 << EWMA_EXTRA_BITS, dtype=np.int64),
            "class_ewma": np.broadcast_to(self._prior, (b, k)).copy(),
            "confidence_ewma": np.full(b, cfg.ref_confidence_q16, dtype=np.int64),
            "entropy_ewma": np.full(b, cfg.ref_entropy_q16, dtype=np.int64),
            "atc_ewma": np.full(b, cfg.ref_accuracy_q16, dtype=np.int64),
            "cusum": z(SCORE_COUNT),
            "excursion_start": z(SCORE_COUNT),
            "alarms": z(),
            "warnings": z(),
            "alarm_time": z(),
            "change_time": z(),
            "moved_at_alarm": z(MASK_WORDS),
            "labels": z(),
            "errors": z(),
            **{name: np.full(b, value, dtype=np.int64) for name, value in ddm_seed(cfg).items()},
            "ddm_in_warning": z(),
            "ddm_warning_time": z(),
            "sensor_flags": z(),
            "clip_ewma": z(),
            "clip_drift_run": z(),
            "sensor_run": z(SENSOR_CONDITION_COUNT),
            "sensor_run_start": z(SENSOR_CONDITION_COUNT),
            "dropout_cusum": z(),
            "dropout_start": z(),
            "input_blocks": z(),
            "input_dead": z(),
            "input_sound": z(),
            "image_probes": z(SENSOR_IMAGE_PROBES),
            "image_frames": z(),
            "commission_count": z(),
            "comm_dead": z(),
            "comm_z_mean": z(c),
            "comm_z_scale": z(c),
            "comm_confidence": z(),
            "comm_entropy": z(),
            "comm_prior": z(k),
            "comm_inv_prior": z(k),
            "comm_centre_weight": z(2),
            "spread_sum": z(SCORE_COUNT),
            "spread_last": z(SCORE_COUNT),
            "spread": np.broadcast_to(self._spread_ref, (b, SCORE_COUNT)).copy(),
            "spread_gain": np.full((b, SCORE_COUNT), ONE_Q12, dtype=np.int64),
            "spread_n": z(),
            "spread_blocks": z(),
            "spread_have_last": z(),
        }

    def _latch(self, alarm: int, fire: np.ndarray, change_time: np.ndarray, at: np.ndarray | None = None) -> None:
        """td_monitor_latch where `fire` is set (td_monitor_latch_at, dated `at`, with `at`)."""
        fire = fire & ((self.alarms & alarm) == 0)
        first = fire & (self.alarms == 0)
        self.alarm_time = np.where(first, self.t if at is None else at, self.alarm_time)
        self.change_time = np.where(first, change_time, self.change_time)
        self.alarms = np.where(fire, self.alarms | alarm, self.alarms)

    def live_alarms(self) -> np.ndarray:
        """td_monitor_live_alarms: latched alarms | live warnings << 8."""
        warnings = self.warnings | np.where(self.ddm_in_warning != 0, ALARM_ERROR_RATE, 0)
        # td_sensor_warning: a condition half way to its fault, or dead time half way to its limit
        half_run = ((self._persist > 0) & (2 * self.sensor_run.astype(np.int64) >= self._persist)).any(axis=1)
        limit = int(self.config.dropout_limit)
        half_dead = (limit > 0) & (self.dropout_cusum >= limit - limit // 2)
        warnings = warnings | np.where(half_run | half_dead, ALARM_SENSOR_FAULT, 0)
        return self.alarms | (warnings << WARNING_SHIFT)

    # -- one inference -------------------------------------------------------------------

    def per_sample(self, summaries: np.ndarray, probs: np.ndarray) -> dict[str, np.ndarray]:
        """What an update computes from its one sample alone, for any number of samples at
        once: the standardized summary (and its decorrelation, and the loudness less its
        predicted class's offset) and the output features.
        Simulations over a fixed sample set compute it once and pass the rows to
        `update(sample=...)`; only the recursion over time is left per step."""
        deviation = np.asarray(summaries).astype(np.int64) - self._ref_mean
        standardized = clamp(round_shift(deviation * self._inv_std, 28 - Z_FRAC_BITS), -CHANNEL_Z_MAX, CHANNEL_Z_MAX)
        z = standardized
        if self._whiten is not None:
            z = clamp(round_shift(self._decorrelate(z), 12), -CHANNEL_Z_MAX, CHANNEL_Z_MAX)
        q = np.asarray(probs).astype(np.int64)
        predicted = np.argmax(q, axis=-1)  # first of ties, as the C's strict '>'
        offset = self.config.loudness_class_offset
        if offset is not None:
            c = self.config.loudness_component
            z = z.copy()
            z[..., c] = clamp(z[..., c] - offset.astype(np.int64)[predicted], -CHANNEL_Z_MAX, CHANNEL_Z_MAX)
        return {
            "z": z,
            "predicted": predicted,
            "confidence": q.max(axis=-1) + 128,
            "entropy": self._entropy[q + 128].sum(axis=-1),
        }

    def _level_step(self, z: np.ndarray) -> None:
        """The loudness component's two-sided CUSUM (up, down) and the quiet component's
        upward one, each dated by the inference where it last left zero, as
        td_monitor_moments. The z they took stay in `loudness_z` and `quiet_z` (no device
        state: calibration's trace)."""
        cfg = self.config
        self.loudness_z, self.quiet_z = z[:, cfg.loudness_component], z[:, cfg.quiet_component]
        k = cfg.loudness_k
        self.loudness_cusum, self.loudness_start = cusum_step(
            self.loudness_cusum, np.stack([self.loudness_z - k, -self.loudness_z - k], axis=1), self.loudness_start,
            self.t[:, None])
        self.quiet_cusum, self.quiet_start = cusum_step(self.quiet_cusum, self.quiet_z - k, self.quiet_start, self.t)

    def moments(self, sample: dict[str, np.ndarray], *, with_moved: bool = True, held: np.ndarray | None = None):
        """td_monitor_moments on per_sample() rows: raw mean and variance scores, and the
        per-channel EWMA mean and variance excess behind the moved mask (and the mask).
        Streams where `held` is set (an input the sensor flagged) keep their state."""
        cfg = self.config
        z = sample["z"]
        held = np.zeros(self.n_streams, bool) if held is None else held
        learning = self.commissioning()
        kept = learning | held
        before = (self.mean_ewma, self.sq_ewma, self.loudness_cusum, self.loudness_start, self.quiet_cusum,
                  self.quiet_start)
        if cfg.commission_n > 0:
            summing = learning & ~held
            if summing.any():
                self.comm_z_mean = np.where(summing[:, None], self.comm_z_mean + z, self.comm_z_mean)
                self.comm_z_scale = np.where(summing[:, None], self.comm_z_scale + round_shift(z * z, Z_FRAC_BITS),
                                             self.comm_z_scale)
            z = clamp(round_shift((z - self.comm_z_mean) * self.comm_z_scale, Z_FRAC_BITS), -CHANNEL_Z_MAX, CHANNEL_Z_MAX)
        z_sq = round_shift(z * z, Z_FRAC_BITS)
        self._level_step(z)
        self.mean_ewma = ewma_step(self.mean_ewma, z << EWMA_EXTRA_BITS, cfg.mean_shift)
        self.sq_ewma = ewma_step(self.sq_ewma, z_sq << EWMA_EXTRA_BITS, cfg.var_shift)
        mean = round_shift(self.mean_ewma, EWMA_EXTRA_BITS)
        mean_sq = round_shift(mean * mean, Z_FRAC_BITS)
        excess = round_shift(self.sq_ewma, EWMA_EXTRA_BITS) - mean_sq - ONE_Q12
        raw_mean = sat32(mean_sq.sum(axis=-1))
        raw_var = sat32(round_shift(excess * excess, Z_FRAC_BITS).sum(axis=-1))
        moved = None
        if with_moved:
            moved = self._moved_words(mean, excess)
        if kept.any():
            # learning or held streams: nothing moves but the sums
            self.mean_ewma = np.where(kept[:, None], before[0], self.mean_ewma)
            self.sq_ewma = np.where(kept[:, None], before[1], self.sq_ewma)
            self.loudness_cusum = np.where(kept[:, None], before[2], self.loudness_cusum)
            self.loudness_start = np.where(kept[:, None], before[3], self.loudness_start)
            self.quiet_cusum = np.where(kept, before[4], self.quiet_cusum)
            self.quiet_start = np.where(kept, before[5], self.quiet_start)
            raw_mean = np.where(kept, 0, raw_mean)
            raw_var = np.where(kept, 0, raw_var)
            if moved is not None:
                moved = np.where(kept[:, None], 0, moved)
        return raw_mean, raw_var, (mean, excess, moved)

    # -- commissioning ---------------------------------------------------------------------

    def commissioning(self) -> np.ndarray:
        """td_monitor_commissioning per stream: still learning the device's reference."""
        n = self.config.commission_n
        return (self.commission_count < n) if n > 0 else np.zeros(self.n_streams, bool)

    def commission_advance(self, learning: np.ndarray) -> None:
        """After an inference: count it where it was learned, and finish the reference
        where it was the last one (td_monitor_commission_finish)."""
        cfg = self.config
        if cfg.commission_n == 0 or not learning.any():
            return
        self.commission_count = self.commission_count + learning
        done = learning & (self.commission_count == cfg.commission_n)
        if not done.any():
            return
        n = cfg.commission_n
        mean = div_round(self.comm_z_mean, n)
        mean_sq = div_round(self.comm_z_scale, n)
        variance = np.maximum(mean_sq - round_shift(mean * mean, Z_FRAC_BITS), COMMISSION_MIN_VAR_Q12)
        sd = isqrt(variance << Z_FRAC_BITS)
        scale = div_round(np.int64(1) << 24, sd)
        self.comm_z_mean = np.where(done[:, None], mean, self.comm_z_mean)
        self.comm_z_scale = np.where(done[:, None], scale, self.comm_z_scale)
        self.comm_confidence = np.where(done, div_round(self.comm_confidence * 256, n), self.comm_confidence)
        self.comm_entropy = np.where(done, div_round(self.comm_entropy, n), self.comm_entropy)
        twice = np.where(self.comm_prior > 0, 2 * self.comm_prior, 1)
        prior = div_round(twice << PROB_FRAC_BITS, 2 * n)
        self.comm_prior = np.where(done[:, None], prior, self.comm_prior)
        self.comm_inv_prior = np.where(done[:, None], div_round(np.int64(1) << 24, np.maximum(prior, 1)), self.comm_inv_prior)
        self.class_ewma = np.where(done[:, None], prior, self.class_ewma)
        self.comm_centre_weight = np.where(done[:, None], n << CENTRE_COMMISSION_SHIFT, self.comm_centre_weight)
        # t counts every inference since the reset that began commissioning, held ones too (>= n;
        # the calibration's raw-score simulation advances commissioning alone, t left at 0)
        inferences = np.maximum(self.t, n)
        share = np.minimum(div_round(self.comm_dead << (PROB_FRAC_BITS - COMMISSION_DEAD_BITS), inferences),
                           _UNIT_MAX16)
        self.comm_dead = np.where(done, share, self.comm_dead)

    def dead_count(self, dead_q12: np.ndarray, learning: np.ndarray) -> None:
        """While commissioning, each inference's dead share into the sum (2^-COMMISSION_DEAD_BITS
        units, saturating), before the scores: the inference may finish commissioning."""
        if self.config.commission_n == 0 or not learning.any():
            return
        units = round_shift(dead_q12, Z_FRAC_BITS - COMMISSION_DEAD_BITS)
        self.comm_dead = np.where(learning, np.minimum(self.comm_dead + units, _UNIT_MAX16), self.comm_dead)

    def intermittent(self, dead_q12: np.ndarray) -> None:
        """td_sensor_intermittent: each inference's dead share into the CUSUM of dead time
        over the commissioning share plus dropout_margin; SENSOR_FAULT at dropout_limit."""
        cfg = self.config
        if cfg.dropout_limit == 0 or not (dead_q12.any() or self.dropout_cusum.any()):
            return  # nothing dead and every CUSUM at zero: an increment <= 0 leaves them there
        judged = ~self.commissioning()
        share = round_shift(self.comm_dead, PROB_FRAC_BITS - Z_FRAC_BITS) if cfg.commission_n > 0 else 0
        increment = dead_q12 - share - cfg.dropout_margin
        cusum, start = cusum_step(self.dropout_cusum, increment, self.dropout_start, self.t)
        self.dropout_cusum = np.where(judged, cusum, self.dropout_cusum)
        self.dropout_start = np.where(judged, start, self.dropout_start)
        self._latch(ALARM_SENSOR_FAULT, judged & (self.dropout_cusum >= cfg.dropout_limit), self.dropout_start)

    KEPT = ("commission_count", "comm_dead", "comm_z_mean", "comm_z_scale", "comm_confidence", "comm_entropy",
            "comm_prior", "comm_centre_weight")

    def kept_commission(self, stream: int = 0) -> dict[str, np.ndarray]:
        """The reference `stream` learned, as the app keeps it across a power cycle (the
        state's commission); td_monitor_commissioned must hold."""
        if self.config.commission_n == 0 or self.commission_count[stream] != self.config.commission_n:
            raise ValueError("this stream has not finished commissioning")
        return {name: np.copy(getattr(self, name)[stream]) for name in self.KEPT}

    def restore_commission(self, kept: dict[str, np.ndarray]) -> None:
        """td_monitor_commission_restore on every stream with a reference kept from another
        twin (kept_commission): the device after a boot that took it back."""
        for name in self.KEPT:
            getattr(self, name)[:] = kept[name]
        prior = np.asarray(kept["comm_prior"], dtype=np.int64)
        self.comm_inv_prior[:] = div_round(np.int64(1) << 24, np.maximum(prior, 1))
        self.class_ewma[:] = prior

    def commission_refine(self, raw: np.ndarray, calm: np.ndarray, active: np.ndarray | None) -> None:
        """td_monitor_commission_refine on the streams that decided (`active`; None: all)."""
        if self.config.commission_n == 0 or self.config.centre_n == 0:
            return  # nothing ever learns (weight < centre_n never holds): the wake-word monitor's case
        on = np.ones(self.n_streams, bool) if active is None else active
        for s, (score, name) in enumerate(((SCORE_CONF, "comm_confidence"), (SCORE_ENTROPY, "comm_entropy"))):
            weight = self.comm_centre_weight[:, s]
            learn = on & calm[:, score] & (weight < self.config.centre_n)
            weight = np.where(learn, weight + 1, weight)
            self.comm_centre_weight[:, s] = weight
            centre = getattr(self, name)
            setattr(self, name, np.where(learn, centre + div_round(raw[:, score], np.maximum(weight, 1)), centre))

    def _decorrelate(self, z: np.ndarray) -> np.ndarray:
        return (z.astype(np.float64) @ self._whiten).astype(np.int64)

    def _moved_words(self, mean: np.ndarray, excess: np.ndarray) -> np.ndarray:
        cfg = self.config
        bits = np.zeros(mean.shape, dtype=bool)
        if cfg.moved_mean_level > 0:
            bits |= np.abs(mean) >= cfg.moved_mean_level
        if cfg.moved_var_level > 0:
            bits |= np.abs(excess) >= cfg.moved_var_level
        words = np.zeros((mean.shape[0], MASK_WORDS), dtype=np.int64)
        weighted = np.where(bits, self._bit_weights, 0)
        for w in range(MASK_WORDS):
            words[:, w] = weighted[:, self._word_of == w].sum(axis=-1)
        return words

    def outputs(self, sample: dict[str, np.ndarray], held: np.ndarray | None = None):
        """td_monitor_answer and td_monitor_outputs on per_sample() rows: the display EWMAs,
        then the confidence, entropy and label-shift scores. Streams where `held` is set keep
        their score state, and their scores read 0."""
        cfg = self.config
        predicted, confidence, entropy = sample["predicted"], sample["confidence"], sample["entropy"]
        held = np.zeros(self.n_streams, bool) if held is None else held
        # the display EWMAs follow every answer, held or not: they describe what the device says
        self.atc_ewma = ewma_step(
            self.atc_ewma, np.where(confidence >= cfg.atc_threshold, ONE_Q16, 0), cfg.display_shift
        )
        self.confidence_ewma = ewma_step(self.confidence_ewma, confidence * 256, cfg.display_shift)
        self.entropy_ewma = ewma_step(self.entropy_ewma, entropy, cfg.display_shift)
        onehot = np.where(self._arange_classes == predicted[:, None], ONE_Q16, 0)
        if cfg.commission_n == 0:
            self.class_ewma = np.where(held[:, None], self.class_ewma,
                                       ewma_step(self.class_ewma, onehot, cfg.label_shift))
            excess = self.class_ewma - self._prior
            excess_sq = round_shift(excess * excess, PROB_FRAC_BITS)
            raw_label = sat32(round_shift(excess_sq * self._inv_prior, 12).sum(axis=-1))
            return (np.where(held, 0, confidence), np.where(held, 0, entropy), np.where(held, 0, raw_label),
                    predicted)
        learning = self.commissioning()
        summing = learning & ~held
        if summing.any():
            self.comm_confidence = np.where(summing, self.comm_confidence + confidence, self.comm_confidence)
            self.comm_entropy = np.where(summing, self.comm_entropy + entropy, self.comm_entropy)
            self.comm_prior = self.comm_prior + np.where(summing[:, None] & (onehot > 0), 1, 0)
        kept = learning | held
        class_ewma = ewma_step(self.class_ewma, onehot, cfg.label_shift)
        self.class_ewma = np.where(kept[:, None], self.class_ewma, class_ewma)
        excess = self.class_ewma - self.comm_prior
        excess_sq = round_shift(excess * excess, PROB_FRAC_BITS)
        raw_label = np.where(kept, 0, sat32(round_shift(excess_sq * self.comm_inv_prior, 12).sum(axis=-1)))
        centred_conf = np.where(kept, 0, confidence * 256 - self.comm_confidence)
        centred_entropy = np.where(kept, 0, entropy - self.comm_entropy)
        return centred_conf, centred_entropy, raw_label, predicted

    def standardize(self, raw: np.ndarray) -> np.ndarray:
        """The z increments (Q12) of raw scores [..., SCORE_COUNT], disabled scores at 0."""
        z = clamp(round_shift((raw - self._offset) * self._gain, 16), -SCORE_Z_MAX, SCORE_Z_MAX)
        return np.where(self._enabled, z, 0)

    def decide(self, raw: np.ndarray, moved_fn, active: np.ndarray | None = None) -> np.ndarray:
        """td_monitor_decide on raw [B, SCORE_COUNT]; moved_fn() gives the moved words.
        Streams where `active` is False (commissioning) do not decide: z 0, state kept."""
        z_raw = self.standardize(raw)
        z = self.spread_apply(z_raw)
        if active is not None:
            z = np.where(active[:, None], z, 0)
        # a disabled score's CUSUM stays at 0 and a commissioning stream's where it was (its
        # z is 0 above, but not its allowance), neither leaving zero
        increment = np.where(self._enabled, z - self._k if active is None else np.where(active[:, None], z - self._k, 0),
                             -CUSUM_MAX)
        self.cusum, self.excursion_start = cusum_step(self.cusum, increment, self.excursion_start, self.t[:, None])
        nxt = self.cusum
        warnings = np.zeros(self.n_streams, dtype=np.int64)
        confidence_latched = np.zeros(self.n_streams, dtype=bool)
        # td_sensor_fault_pending: no limit latches while a sensor fault is building up.
        limits_on = ~((self._persist > 0) & (self.sensor_run > 0)).any(axis=1)
        for i in range(SCORE_COUNT):
            if not self._enabled[i]:
                continue
            alarm = SCORE_ALARM[i]
            warnings |= np.where(nxt[:, i] >= self._warning[i], alarm, 0)
            peak = (limits_on & (z[:, i] >= self._limit[i])) if self._limit[i] > 0 else False
            fire = ((nxt[:, i] >= self._drift[i]) | peak) & ((self.alarms & alarm) == 0)
            if active is not None:
                fire &= active
            if fire.any():
                self._latch(alarm, fire, self.excursion_start[:, i])
                if alarm == ALARM_CONFIDENCE_DRIFT:
                    confidence_latched |= fire
                if alarm == ALARM_DATA_DRIFT:
                    self.moved_at_alarm = np.where(fire[:, None], moved_fn(), self.moved_at_alarm)
        # The loudness limit on its own CUSUM of that component, as td_monitor_decide: the
        # upward side first.
        if self.config.loudness_limit > 0:
            over = self.loudness_cusum >= self.config.loudness_limit
            loud = (limits_on & (self.clip_drift_run == 0) & over.any(axis=1) & ((self.alarms & ALARM_DATA_DRIFT) == 0))
            if active is not None:
                loud &= active
            if loud.any():
                start = np.where(over[:, 0], self.loudness_start[:, 0], self.loudness_start[:, 1])
                self._latch(ALARM_DATA_DRIFT, loud, start)
                self.moved_at_alarm = np.where(loud[:, None], moved_fn(), self.moved_at_alarm)
        # ...and the quiet level's, upward
        if self.config.quiet_limit > 0:
            quiet = (limits_on & (self.clip_drift_run == 0) & (self.quiet_cusum >= self.config.quiet_limit)
                     & ((self.alarms & ALARM_DATA_DRIFT) == 0))
            if active is not None:
                quiet &= active
            if quiet.any():
                self._latch(ALARM_DATA_DRIFT, quiet, self.quiet_start)
                self.moved_at_alarm = np.where(quiet[:, None], moved_fn(), self.moved_at_alarm)
        # CONFIDENCE_DRIFT latches DATA_DRIFT too unless the class mix explains it (LABEL_SHIFT
        # latched), or, when it does, if the inputs show it (an input score at its warning
        # level, or attribute_moved components moved), as td_monitor_decide: the outputs moved
        # because the inputs did.
        attribute = confidence_latched & ((self.alarms & ALARM_DATA_DRIFT) == 0)
        seen = (warnings & ALARM_DATA_DRIFT) != 0
        if attribute.any() and self.config.attribute_moved > 0:
            moved_count = np.unpackbits(moved_fn().astype(np.uint32).view(np.uint8), axis=-1).sum(axis=-1)
            seen |= moved_count >= self.config.attribute_moved
        attribute &= ((self.alarms & ALARM_LABEL_SHIFT) == 0) | seen
        if attribute.any():
            mean_warned = self._enabled[SCORE_MEAN] & (nxt[:, SCORE_MEAN] >= self._warning[SCORE_MEAN])
            start = np.where(mean_warned, self.excursion_start[:, SCORE_MEAN], self.excursion_start[:, SCORE_VAR])
            self._latch(ALARM_DATA_DRIFT, attribute, start)
            self.moved_at_alarm = np.where(attribute[:, None], moved_fn(), self.moved_at_alarm)
        calm = (self.cusum < self._warning) & ((self.alarms[:, None] & self._score_alarm) == 0)
        self.spread_learn(z_raw, calm, active)
        self.commission_refine(raw, calm, active)
        self.warnings = warnings if active is None else np.where(active, warnings, self.warnings)
        return z

    # -- long-run spread -------------------------------------------------------------------

    def spread_apply(self, z: np.ndarray) -> np.ndarray:
        """td_monitor_spread_apply for every score: z drawn toward its centre by the gain."""
        centre = self._spread_centre
        drawn = centre + round_shift((z - centre) * self.spread_gain, Z_FRAC_BITS)
        return np.where(self._spread_ref > 0, drawn, z)

    def spread_learn(self, z: np.ndarray, calm: np.ndarray, active: np.ndarray | None) -> None:
        """td_monitor_spread_learn on the streams that decided (`active`; None: all)."""
        on = np.ones(self.n_streams, bool) if active is None else active
        self.spread_sum = np.where(on[:, None], self.spread_sum + z, self.spread_sum)
        self.spread_n = self.spread_n + on
        ended = on & (self.spread_n >= (1 << SPREAD_BLOCK_SHIFT))
        if not ended.any():
            return
        ref = self._spread_ref
        weight = SPREAD_PRIOR_BLOCKS + self.spread_blocks
        mean = round_shift(self.spread_sum, SPREAD_BLOCK_SHIFT)
        learn = ended[:, None] & (ref > 0) & (self.spread_have_last[:, None] != 0) & calm
        spread = self.spread + div_round(block_spread(mean, self.spread_last) - self.spread, weight[:, None])
        gain = isqrt(div_round(ref << (2 * Z_FRAC_BITS), np.maximum(np.maximum(spread, ref), 1)))
        self.spread = np.where(learn, spread, self.spread)
        self.spread_gain = np.where(learn, gain, self.spread_gain)
        self.spread_last = np.where(ended[:, None], mean, self.spread_last)
        self.spread_sum = np.where(ended[:, None], 0, self.spread_sum)
        grow = learn.any(axis=1) & (self.spread_blocks < SPREAD_PRIOR_BLOCKS)
        self.spread_blocks = self.spread_blocks + grow
        self.spread_have_last = np.where(ended, 1, self.spread_have_last)
        self.spread_n = np.where(ended, 0, self.spread_n)

    def update(self, summary: np.ndarray | None, probs: np.ndarray | None, *, full: bool = True, sample: dict | None = None) -> dict[str, np.ndarray]:
        """td_monitor_update for every stream: summary int16 [B, C], probs int8 [B, K]
        (or their per_sample() rows as `sample`).

        With full=False only what the decision needs is computed (no moved mask unless a
        DATA_DRIFT alarm latches), for long simulations."""
        if sample is None:
            sample = self.per_sample(summary, probs)
        self.t = np.minimum(self.t + 1, UINT32_MAX)
        learning = self.commissioning()
        # what its sensor blocks said: none sound, held out of the scores; the share dead
        blocks = self.input_blocks
        held = (blocks > 0) & (self.input_sound == 0)
        dead_q12 = (self.input_dead << Z_FRAC_BITS) // np.maximum(blocks, 1)
        self.input_blocks, self.input_dead, self.input_sound = (np.zeros_like(blocks) for _ in range(3))
        self.dead_count(dead_q12, learning)
        raw_mean, raw_var, (mean, excess, moved) = self.moments(sample, with_moved=full, held=held)
        confidence, entropy, raw_label, predicted = self.outputs(sample, held)
        raw = np.stack([raw_mean, raw_var, confidence, entropy, raw_label], axis=-1)
        cache = {}

        def moved_fn():
            if moved is not None:
                return moved
            if "moved" not in cache:
                cache["moved"] = self._moved_words(mean, excess)
            return cache["moved"]

        deciding = ~held if self.config.commission_n == 0 else ~learning & ~held
        z = self.decide(raw, moved_fn, None if deciding.all() else deciding)
        self.commission_advance(learning & ~held)
        self.intermittent(dead_q12)
        result = {"t": self.t, "raw": raw, "z": z, "cusum": self.cusum, "alarms": self.live_alarms()}
        if full:
            result.update(
                alarm_time=self.alarm_time,
                change_time=self.change_time,
                moved=moved,
                moved_at_alarm=self.moved_at_alarm,
                predicted=predicted,
                confidence=sample["confidence"],
                entropy_q16=sample["entropy"],
                confidence_ewma_q16=self.confidence_ewma,
                entropy_ewma_q16=self.entropy_ewma,
                atc_accuracy_q16=self.atc_ewma,
                sensor_flags=self.sensor_flags,
            )
        return result

    # -- label feedback and sensor health ------------------------------------------------

    def label_feedback(self, predicted, true_label, streams: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """td_monitor_label_feedback for the streams where `streams` (bool[B]) is set."""
        cfg = self.config
        active = np.ones(self.n_streams, bool) if streams is None else np.asarray(streams, bool)
        predicted = np.broadcast_to(np.asarray(predicted, np.int64), (self.n_streams,))
        true_label = np.broadcast_to(np.asarray(true_label, np.int64), (self.n_streams,))
        valid = (predicted >= 0) & (predicted < cfg.n_classes) & (true_label >= 0) & (true_label < cfg.n_classes)
        if np.any(active & ~valid):
            raise ValueError("label feedback with a class outside 0..n_classes-1")
        self.labels = np.where(active, np.minimum(self.labels + 1, UINT32_MAX), self.labels)
        wrong = active & (predicted != true_label)
        self.errors = np.where(wrong, np.minimum(self.errors + 1, UINT32_MAX), self.errors)
        trials = self.labels + 2
        p = ((self.errors + 1) << PROB_FRAC_BITS) // trials
        s = isqrt((p * (ONE_Q16 - p)) // trials)
        ps = p + s
        testing = active & (self.labels >= cfg.ddm_min_labels)
        new_min = testing & ((self.ddm_p_min == 0) | (ps < self.ddm_p_min + self.ddm_s_min))
        self.ddm_p_min = np.where(new_min, p, self.ddm_p_min)
        self.ddm_s_min = np.where(new_min, s, self.ddm_s_min)
        self.ddm_in_warning = np.where(new_min, 0, self.ddm_in_warning)
        level = ps << 8
        base = self.ddm_p_min << 8
        checking = testing & ~new_min
        warn = checking & (level >= base + cfg.ddm_warning_q8 * self.ddm_s_min)
        begin = warn & (self.ddm_in_warning == 0)
        self.ddm_warning_time = np.where(begin, self.t, self.ddm_warning_time)
        self.ddm_in_warning = np.where(warn, 1, np.where(checking, 0, self.ddm_in_warning))
        drift = warn & (level >= base + cfg.ddm_drift_q8 * self.ddm_s_min)
        self._latch(ALARM_ERROR_RATE, drift, self.ddm_warning_time)
        return {"labels": self.labels, "errors": self.errors, "p_q16": p, "s_q16": s, "alarms": self.live_alarms()}

    def sensor_update(self, pcm: np.ndarray, streams: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """td_sensor_update on one block per stream: pcm int16 [B, n]."""
        cfg = self.config
        pcm = np.asarray(pcm)
        if pcm.dtype != np.int16 or pcm.ndim != 2 or pcm.shape[0] != self.n_streams:
            raise ValueError(f"expected int16 [{self.n_streams}, n], got {pcm.dtype} {pcm.shape}")
        n = pcm.shape[1]
        if not 1 <= n <= SENSOR_MAX_BLOCK:
            raise ValueError(f"sensor block of {n} samples not in 1..{SENSOR_MAX_BLOCK}")
        x = pcm.astype(np.int64)
        clipped = ((x >= cfg.clip_level) | (x <= -cfg.clip_level)).sum(axis=1)
        return self.sensor_update_stats(x.sum(axis=1), (x * x).sum(axis=1), clipped, n, streams)

    def sensor_update_stats(self, total: np.ndarray, total_sq: np.ndarray, clipped: np.ndarray, n: int,
                            streams: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """td_sensor_update from a block's sums (of samples, of squares) and its count of
        samples at or beyond the clip level: what the device computes in its one pass."""
        mean, variance, conditions = self.sensor_conditions(total, total_sq, clipped, n)
        self.sensor_update_blocks(conditions[:, None], streams)
        return {"mean": mean, "variance": variance, "clipped": np.asarray(clipped, dtype=np.int64),
                "flags": self.sensor_flags, "alarms": self.live_alarms()}

    def sensor_conditions(self, total, total_sq, clipped, n: int):
        """A block's mean, variance and condition bits (clipping, DC offset, stuck, silence)."""
        cfg = self.config
        total = np.asarray(total, dtype=np.int64)
        total_sq = np.asarray(total_sq, dtype=np.int64)
        clipped = np.asarray(clipped, dtype=np.int64)
        mean = total // n
        spread = total_sq * n - total * total
        variance = spread // (n * n)
        conditions = np.zeros(total.shape, dtype=np.int64)
        if cfg.clip_rate_q16 > 0:
            conditions |= np.where((clipped << PROB_FRAC_BITS) >= cfg.clip_rate_q16 * n, SENSOR_CLIPPING, 0)
        if cfg.dc_level > 0:
            conditions |= np.where((mean >= cfg.dc_level) | (mean <= -cfg.dc_level), SENSOR_DC_OFFSET, 0)
        # the exact variance, not the floored one: a quiet working microphone moves a little
        stuck = (variance < cfg.stuck_variance) | ((variance == cfg.stuck_variance) & (spread % (n * n) == 0))
        conditions |= np.where(stuck, SENSOR_STUCK, 0)
        if cfg.dc_level > 0:  # held away from zero: all offset (a quiet microphone rests at zero)
            conditions |= np.where(stuck & (mean * mean > cfg.silence_variance), SENSOR_DC_OFFSET, 0)
        conditions |= np.where(~stuck & (variance <= cfg.silence_variance), SENSOR_SILENCE, 0)
        return mean, variance, conditions

    def sensor_image_update(self, pixels: np.ndarray, streams: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """td_sensor_image_update on one frame per stream: int8 [B, ...] (pixels minus 128)."""
        stats = image_sensor_stats(pixels.reshape(self.n_streams, -1), self.config.clip_level)
        return self.sensor_image_update_stats(stats, pixels[0].size, streams)

    def sensor_image_update_stats(self, stats: np.ndarray, n: int, streams: np.ndarray | None = None) -> dict:
        """td_sensor_image_update from a frame's `image_sensor_stats` row per stream [B, 3 +
        SENSOR_IMAGE_PROBES] (n: the frame's values): conditions against the config and the
        previous frame's probes, then the runs and faults as for PCM blocks."""
        cfg = self.config
        stats = np.asarray(stats, dtype=np.int64)
        active = np.ones(self.n_streams, bool) if streams is None else np.asarray(streams, bool)
        total, total_sq, saturated, probes = stats[:, 0], stats[:, 1], stats[:, 2], stats[:, 3:]
        mean = total // n
        spread = total_sq * n - total * total
        variance = spread // (n * n)
        moved = (np.abs(probes - self.image_probes) > cfg.stuck_variance).sum(axis=1)
        conditions = np.zeros(len(total), dtype=np.int64)
        if cfg.clip_rate_q16 > 0:
            conditions |= np.where((saturated << PROB_FRAC_BITS) >= cfg.clip_rate_q16 * n, SENSOR_CLIPPING, 0)
        if cfg.dc_level > 0:
            conditions |= np.where((mean >= cfg.dc_level) | (mean <= -cfg.dc_level), SENSOR_DC_OFFSET, 0)
        conditions |= np.where((self.image_frames > 0) & (moved == 0), SENSOR_STUCK, 0)
        conditions |= np.where(variance <= cfg.silence_variance, SENSOR_SILENCE, 0)
        self.image_probes = np.where(active[:, None], probes, self.image_probes)
        self.image_frames = np.where(active, np.minimum(self.image_frames + 1, UINT32_MAX), self.image_frames)
        self.sensor_update_blocks(conditions[:, None], streams)
        return {"mean": mean, "variance": variance, "clipped": saturated, "flags": self.sensor_flags,
                "alarms": self.live_alarms()}

    def _light_clipping(self, conditions: np.ndarray, active: np.ndarray) -> np.ndarray:
        """The EWMA of clipping blocks over these blocks [B, blocks] and its run at or above
        clip_drift_q16; returns per stream the first clipping block at which the run has
        reached clip_drift_blocks (blocks: none)."""
        b, nb = conditions.shape
        first = np.full(b, nb, dtype=np.int64)
        level = int(self.config.clip_drift_q16)
        if level == 0:
            return first
        clipping = (conditions & SENSOR_CLIPPING) != 0
        value = self.clip_ewma.astype(np.int64)
        run = self.clip_drift_run.astype(np.int64)
        # A stream without a clipping block whose EWMA is where a step towards 0 leaves it,
        # below the level, keeps its value, and its run is 0 from the first block on: the
        # block loop below is needed only for the others (most inferences of most streams).
        settled = ~clipping.any(axis=1) & (ewma_step(value, 0, CLIP_EWMA_SHIFT) == value) & (round_shift(value, 8) < level)
        run = np.where(active & settled, 0, run)
        busy = np.flatnonzero(active & ~settled)
        if busy.size:
            clips = np.where(clipping[busy], 1 << (PROB_FRAC_BITS + 8), 0)
            v, r, f = value[busy], run[busy], first[busy]
            for k in range(nb):
                v = ewma_step(v, clips[:, k], CLIP_EWMA_SHIFT)
                r = np.where(round_shift(v, 8) >= level, np.minimum(r + 1, _UNIT_MAX16), 0)
                f = np.where((f == nb) & (r >= int(self.config.clip_drift_blocks)) & clipping[busy, k], k, f)
            value[busy], run[busy], first[busy] = v, r, f
        self.clip_ewma = value
        self.clip_drift_run = run
        return first

    def sensor_update_blocks(self, conditions: np.ndarray, streams: np.ndarray | None = None) -> None:
        """td_sensor_update on consecutive blocks of one inference, from their condition bits
        [B, blocks]: the same state as one call per block, computed for all blocks at once
        (a run's length at block k is k minus the last block without the condition).
        Blocks come before the update of the inference they belong to: dated t + 1."""
        cfg = self.config
        now = np.minimum(self.t + 1, UINT32_MAX)  # the inference these blocks feed, not yet counted in t
        conditions = np.asarray(conditions, dtype=np.int64)
        b, nb = conditions.shape
        active = np.ones(self.n_streams, bool) if streams is None else np.asarray(streams, bool)
        k = np.arange(nb)
        first_block = np.full(b, nb, dtype=np.int64)  # earliest faulting block, any condition
        first_start = np.zeros(b, dtype=np.int64)
        last_faults = np.zeros(b, dtype=np.int64)
        for c in range(SENSOR_CONDITION_COUNT):
            on = ((conditions >> c) & 1 == 1) & active[:, None]
            r0 = self.sensor_run[:, c].astype(np.int64)
            last_off = np.maximum.accumulate(np.where(on, -1, k[None, :]), axis=1)
            carried = last_off < 0  # no block without the condition yet: the run goes on from r0
            run = np.where(on, np.minimum(k[None, :] - last_off + np.where(carried, r0[:, None], 0), _UNIT_MAX16), 0)
            previous = np.concatenate([r0[:, None], run[:, :-1]], axis=1)
            begins = on & (previous == 0)
            start_before = self.sensor_run_start[:, c].copy()
            persist = int(cfg.persist_blocks[c])
            if persist > 0:
                fault = on & (run >= persist)
                any_fault = fault.any(axis=1)
                kc = np.where(any_fault, fault.argmax(axis=1), nb)
                # the run's start: this inference, unless the run was carried in from before
                start_c = np.where(carried[np.arange(b), np.minimum(kc, nb - 1)] & (r0 > 0), start_before, now)
                earlier = kc < first_block
                first_start = np.where(earlier, start_c, first_start)
                first_block = np.where(earlier, kc, first_block)
                last_faults |= np.where(fault[:, -1], 1 << c, 0)
            self.sensor_run[:, c] = np.where(active, run[:, -1], self.sensor_run[:, c])
            self.sensor_run_start[:, c] = np.where(active & begins.any(axis=1), now, start_before)
        # Counted for the inference these blocks feed: dead (stuck or flat, where that persists
        # into a fault), sound (no such condition at all); td_monitor_update holds an inference
        # without a sound block out of every score and adds its dead share to the CUSUM of
        # dead time. At TD_SENSOR_INPUT_MAX_BLOCKS both counts halve, rounding up.
        if nb > 0:
            pending = conditions & self._pending_conditions
            dead = ((pending & (SENSOR_STUCK | SENSOR_SILENCE)) != 0).astype(np.int64)
            blocks, n_dead = self.input_blocks, self.input_dead
            if (blocks + nb <= SENSOR_INPUT_MAX_BLOCKS).all():
                blocks, n_dead = blocks + nb, n_dead + dead.sum(axis=1)
            else:
                for k in range(nb):
                    full = blocks == SENSOR_INPUT_MAX_BLOCKS
                    blocks, n_dead = np.where(full, (blocks + 1) >> 1, blocks), np.where(full, (n_dead + 1) >> 1, n_dead)
                    blocks, n_dead = blocks + 1, n_dead + dead[:, k]
            sound = (pending == 0).any(axis=1)
            self.input_blocks = np.where(active, blocks, self.input_blocks)
            self.input_dead = np.where(active, n_dead, self.input_dead)
            self.input_sound = np.where(active & sound, 1, self.input_sound)
        clip_first = self._light_clipping(conditions, active)
        # Block by block as the C does: light clipping only before any SENSOR_FAULT (a fault in
        # the same block comes first).
        self._latch(ALARM_DATA_DRIFT, (clip_first < first_block) & ((self.alarms & ALARM_SENSOR_FAULT) == 0), now, now)
        self._latch(ALARM_SENSOR_FAULT, first_block < nb, first_start, now)
        self.sensor_flags = np.where(active, conditions[:, -1] | (last_faults << SENSOR_FAULT_SHIFT), self.sensor_flags)


def block_spread(mean: np.ndarray, last: np.ndarray) -> np.ndarray:
    """What one block tells td_monitor_spread_learn, from its mean z and the previous
    block's (Q12): half their squared difference times the block length, in Q12."""
    diff = mean - last
    return round_shift(diff * diff, Z_FRAC_BITS + 1 - SPREAD_BLOCK_SHIFT)


def image_probe_positions(n: int) -> np.ndarray:
    """Where td_sensor_image_update probes a frame of n values: the middle of each of
    SENSOR_IMAGE_PROBES equal spans."""
    return (2 * np.arange(SENSOR_IMAGE_PROBES, dtype=np.int64) + 1) * n // (2 * SENSOR_IMAGE_PROBES)


def sensor_stats(audio: np.ndarray, clip_level: int, block: int) -> np.ndarray:
    """Per clip and block of `block` samples: what td_sensor_update sums in its one pass (the
    sum, the sum of squares, the samples at or beyond the clip level), [clips, blocks, 3]."""
    x = audio.astype(np.int64).reshape(len(audio), -1, block)
    clipped = ((x >= clip_level) | (x <= -clip_level)).sum(-1)
    return np.stack([x.sum(-1), (x * x).sum(-1), clipped], axis=-1)


def image_sensor_stats(frames: np.ndarray, clip_level: int) -> np.ndarray:
    """What td_sensor_image_update reads of each frame, int64 [N, 3 + SENSOR_IMAGE_PROBES]:
    sum, sum of squares, saturated count (|value| >= clip_level), the probed values. From
    int8 frames [N, ...] (pixels minus 128); the drift bench keeps these per image."""
    frames = np.asarray(frames)
    if frames.dtype != np.int8:
        raise ValueError(f"expected int8 frames, got {frames.dtype}")
    x = frames.reshape(len(frames), -1).astype(np.int64)
    if not SENSOR_IMAGE_PROBES <= x.shape[1] <= 255 * 255 * 3:
        raise ValueError(f"a frame of {x.shape[1]} values: not in {SENSOR_IMAGE_PROBES}..{255 * 255 * 3}")
    saturated = ((x >= clip_level) | (x <= -clip_level)).sum(axis=1)
    return np.concatenate([x.sum(axis=1, keepdims=True), (x * x).sum(axis=1, keepdims=True), saturated[:, None],
                           x[:, image_probe_positions(x.shape[1])]], axis=1)


def inference_row(result: dict[str, np.ndarray], stream: int = 0) -> list[int]:
    """The result of one stream as a row laid out like INFERENCE_FIELDS."""
    r = {k: np.asarray(v)[stream] for k, v in result.items()}
    row = [EVENT_INFERENCE, r["t"], *r["raw"], *r["z"], *r["cusum"], r["alarms"], r["alarm_time"], r["change_time"]]
    row += [*r["moved"], *r["moved_at_alarm"]]
    row += [r[name] for name in INFERENCE_FIELDS[-7:]]
    return [int(v) for v in row]


def result_rows(result: dict[str, np.ndarray]) -> np.ndarray:
    """The results of all streams of one `update(full=True)` as rows [B, ROW_WIDTH]."""
    columns = [np.full_like(result["t"], EVENT_INFERENCE), result["t"]]
    columns += [result[name][:, i] for name in ("raw", "z", "cusum") for i in range(SCORE_COUNT)]
    columns += [result["alarms"], result["alarm_time"], result["change_time"]]
    columns += [result["moved"][:, w] for w in range(MASK_WORDS)]
    columns += [result["moved_at_alarm"][:, w] for w in range(MASK_WORDS)]
    columns += [result[name] for name in INFERENCE_FIELDS[-7:]]
    return np.stack([np.asarray(c, dtype=np.int64) for c in columns], axis=1)


def run_events(
    config: MonitorConfig,
    events: np.ndarray,
    summaries: np.ndarray,
    probs: np.ndarray,
    pcm: np.ndarray | None = None,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """Replay an event list on one stream, as the C host shim does: one row per event.

    events int [n, 3]: (EVENT_INFERENCE, row, 0) runs summaries[row], probs[row];
    (EVENT_FEEDBACK, predicted, true_label); (EVENT_SENSOR, offset, length) feeds
    pcm[offset:offset + length]; (EVENT_IMAGE_SENSOR, offset, length) feeds the camera frame
    frames[offset:offset + length] (int8, flat); (EVENT_RESET, 0, 0)."""
    twin = MonitorTwin(config, 1)
    rows = np.zeros((len(events), ROW_WIDTH), dtype=np.int64)
    for i, (kind, a, b) in enumerate(np.asarray(events, dtype=np.int64)):
        if kind == EVENT_INFERENCE:
            result = twin.update(summaries[a][None, :], probs[a][None, :])
            rows[i] = inference_row(result)
        elif kind == EVENT_FEEDBACK:
            r = twin.label_feedback(a, b)
            rows[i, : len(FEEDBACK_FIELDS)] = [EVENT_FEEDBACK, *(int(r[f][0]) for f in FEEDBACK_FIELDS[1:])]
        elif kind == EVENT_SENSOR:
            r = twin.sensor_update(pcm[None, a : a + b])
            rows[i, : len(SENSOR_FIELDS)] = [EVENT_SENSOR, *(int(r[f][0]) for f in SENSOR_FIELDS[1:])]
        elif kind == EVENT_IMAGE_SENSOR:
            r = twin.sensor_image_update(np.asarray(frames).reshape(-1)[None, a : a + b])
            rows[i, : len(SENSOR_FIELDS)] = [EVENT_IMAGE_SENSOR, *(int(r[f][0]) for f in SENSOR_FIELDS[1:])]
        elif kind == EVENT_RESET:
            twin.reset()
            rows[i, 0] = EVENT_RESET
        else:
            raise ValueError(f"unknown event kind {kind}")
    return rows
