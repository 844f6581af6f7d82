"""The drift monitor's configuration: the host-side mirror of `td_monitor_config_t`.

Every field is an integer in the firmware's fixed-point format; `MonitorConfig.validate`
applies the same range checks as `td_monitor_check_config`, whose ranges are what keeps
every product of the C inside its integer type.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.modeldir import ModelDir

# Mirrors of td_monitor.h (tests/test_monitor_c.py checks them against the header).
ABI_VERSION = 14
# Configs of these versions read as this one: version 4 had no score limits (all 0 now),
# version 6 no long-run spread (off), version 7 no centre learned after commissioning (off),
# version 8 no loudness limit (off), version 9 a loudness limit on an EWMA, not a CUSUM (off:
# that limit means nothing to a CUSUM; export again for one), version 10 no quiet limit (off),
# version 11 no reference error rate for the error-rate test (it starts from no best),
# version 12 no loudness offset per predicted class (none), version 13 no test of a sensor
# that fails on and off (off).
READABLE_ABI_VERSIONS = (4, 5, 6, 7, 8, 9, 10, 11, 12, 13, ABI_VERSION)
# The version that added each field since the oldest readable one: an older config was
# written without it. Every other field is in every config (metadata aside, the host's own
# notes): a deleted one would read as its default (score_drift's: a level never reached).
ADDED_IN_ABI = {"score_limit": 5, "clip_drift_q16": 6, "clip_drift_blocks": 6, "attribute_moved": 6,
                "score_spread_ref": 7, "score_spread_centre": 7, "centre_n": 8,
                "loudness_component": 9, "loudness_limit": 9, "loudness_k": 10, "quiet_component": 11,
                "quiet_limit": 11, "ddm_reference_q16": 12, "loudness_class_offset": 13, "dropout_margin": 14,
                "dropout_limit": 14}
MAX_SUMMARY = 64
MAX_CLASSES = 16
Z_FRAC_BITS = 12
EWMA_EXTRA_BITS = 8
PROB_FRAC_BITS = 16
ENTROPY_FRAC_BITS = 16
CHANNEL_Z_MAX = 32767
SCORE_Z_MAX = 65536
CUSUM_MAX = 1 << 30
CLIP_EWMA_SHIFT = 12
SUMMARY_FRAC_BITS = 7
SENSOR_MAX_BLOCK = 65536
MAX_COMMISSION = 1024
COMMISSION_MIN_VAR_Q12 = 64
SPREAD_BLOCK_SHIFT = 6
SPREAD_PRIOR_BLOCKS = 32
CENTRE_COMMISSION_SHIFT = 2
COMMISSION_DEAD_BITS = 6
SENSOR_INPUT_MAX_BLOCKS = 255
SPREAD_REF_MAX = 1 << 28

ONE_Q12 = 1 << Z_FRAC_BITS
ONE_Q16 = 1 << PROB_FRAC_BITS

SCORE_MEAN, SCORE_VAR, SCORE_CONF, SCORE_ENTROPY, SCORE_LABEL = range(5)
SCORE_NAMES = ("mean", "var", "confidence", "entropy", "label")
SCORE_COUNT = len(SCORE_NAMES)

ALARM_DATA_DRIFT = 1 << 0
ALARM_CONFIDENCE_DRIFT = 1 << 1
ALARM_LABEL_SHIFT = 1 << 2
ALARM_ERROR_RATE = 1 << 3
ALARM_SENSOR_FAULT = 1 << 4
ALARM_TYPES_MASK = 0x1F
WARNING_SHIFT = 8
ALARM_NAMES = {
    ALARM_DATA_DRIFT: "DATA_DRIFT",
    ALARM_CONFIDENCE_DRIFT: "CONFIDENCE_DRIFT",
    ALARM_LABEL_SHIFT: "LABEL_SHIFT",
    ALARM_ERROR_RATE: "ERROR_RATE",
    ALARM_SENSOR_FAULT: "SENSOR_FAULT",
}
SCORE_ALARM = (
    ALARM_DATA_DRIFT,
    ALARM_DATA_DRIFT,
    ALARM_CONFIDENCE_DRIFT,
    ALARM_CONFIDENCE_DRIFT,
    ALARM_LABEL_SHIFT,
)

SENSOR_CLIPPING = 1 << 0
SENSOR_DC_OFFSET = 1 << 1
SENSOR_STUCK = 1 << 2
SENSOR_SILENCE = 1 << 3
SENSOR_CONDITION_COUNT = 4
SENSOR_FAULT_SHIFT = 4
SENSOR_IMAGE_PROBES = 32  # a camera frame's values compared with the previous frame's

MAX_SHIFT = 15


def alarm_names(word: int) -> list[str]:
    """Names of the latched alarms in an alarm word, then of its live warnings."""
    names = [name for bit, name in ALARM_NAMES.items() if word & bit]
    names += [f"{name}_WARNING" for bit, name in ALARM_NAMES.items() if word & (bit << WARNING_SHIFT)]
    return names


def entropy_table_q16() -> np.ndarray:
    """-p ln p in Q16 nats for p = i / 256, i = 0..255: the int8 softmax output (scale
    1/256, zero point -128) has exactly these 256 probabilities, so the table is exact to
    its rounding."""
    p = np.arange(256, dtype=np.float64) / 256.0
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(p > 0, -p * np.log(p), 0.0)
    return np.floor(h * ONE_Q16 + 0.5).astype(np.uint16)


def _as_array(values, name: str) -> np.ndarray:
    try:
        return np.asarray(values)
    except ValueError:  # ragged nesting, from a hand-edited JSON
        raise TinydriftError(f"monitor config: {name} must be a rectangular array of integers") from None


def _int_array(values, dtype, length: int | None = None, name: str = "", sized_by: str = "") -> np.ndarray:
    arr = _as_array(values, name)
    if arr.dtype.kind == "O" and all(isinstance(v, int) and not isinstance(v, bool) for v in arr.reshape(-1)):
        # whole numbers past int64 (numpy keeps them as objects): once called "mixed or null"
        raise TinydriftError(f"monitor config: {name} out of the range of {np.dtype(dtype).name}")
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.isfinite(arr))):
        kind = {"U": "text", "S": "text", "b": "true/false", "O": "mixed or null", "f": "non-finite"}.get(arr.dtype.kind,
                                                                                                  arr.dtype.name)
        raise TinydriftError(f"monitor config: {name} must hold integers, got {kind} values")
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        sized = f" (as many as {sized_by} holds: the two must agree, one of them was edited)" if sized_by else ""
        count = "" if length is None else f"{length} "  # not "a vector of None integers"
        raise TinydriftError(f"monitor config: {name} must be a vector of {count}integers{sized}, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.asarray(arr, dtype=np.float64) == np.round(arr)):
            raise TinydriftError(f"monitor config: {name} must hold integers")
    info = np.iinfo(dtype)
    wide = np.asarray(arr, dtype=np.int64)
    if wide.size and (wide.min() < info.min or wide.max() > info.max):
        raise TinydriftError(f"monitor config: {name} out of the range of {np.dtype(dtype).name}")
    return wide.astype(dtype)


@dataclasses.dataclass
class MonitorConfig:
    """All the numbers the firmware's monitor runs on (see td_monitor.h for each meaning)."""

    ref_mean: np.ndarray  # int16[C], summary units
    inv_std_q28: np.ndarray  # int32[C]
    prior_q16: np.ndarray  # int32[K]
    inv_prior_q8: np.ndarray  # int32[K]
    # Optional int16 [C, C] Q12 decorrelating matrix applied to the standardized summary
    # (None: channels standardized one by one).
    whiten_q12: np.ndarray | None = None
    ref_confidence_q16: int = 0
    ref_entropy_q16: int = 0
    atc_threshold: int = 256
    ref_accuracy_q16: int = 0
    mean_shift: int = 5
    var_shift: int = 6
    label_shift: int = 6
    display_shift: int = 6
    moved_mean_level: int = 0
    moved_var_level: int = 0
    # CONFIDENCE_DRIFT latches DATA_DRIFT too unless the class mix explains it (LABEL_SHIFT
    # latched); even then with at least this many moved components (0: that evidence off). Measured on
    # models/kws at the confidence latch: white noise at 0 dB had 3 or more in 98 % of
    # streams (median 7), an accent, unseen pitch and speed none, a no-drift stream at a
    # random time none in 200.
    attribute_moved: int = 3
    # The summary value that is the input's loudness (td_summarize_level's), and a two-sided
    # CUSUM of its component's z with reference value loudness_k (Q12), either side reaching
    # loudness_limit (Q12) latching DATA_DRIFT at once (0: off). Measured on models/kws (quick
    # drift bench's pools, the statistic alone, its limit set for 10x the target on the
    # calibration's runs of 15): an EWMA of that z at 2^-5 (the mean score's weight) found
    # gains of -6 and +6 dB in 4 and 1 % of streams, at 2^-7 in 97 and 100 % after 273 and 275.5
    # inferences; the CUSUM with k = 0.5 sd (its level then read off upcrossings, 44 sd, not
    # restarts) in 99 and 100 % after 212 and 190.5 (k 0.35, 0.6 and 0.75 slower). Checked at the level export sets (49 sd) on gains chosen after that
    # choice, each statistic alone in the twin: -9 and +9 dB after 92 and 85 inferences (the
    # EWMA 119.5 and 119.5), -4.5 and +4.5 dB in 52 and 44 % of streams (EWMA 50 and 42 %), 3 dB
    # in 1 % or none either way, a 9 dB fade over 300 inferences after 296.5 (EWMA 292); none of
    # 100 streams of the one-voice and noisy-room controls crossed either.
    loudness_component: int = 0
    loudness_k: int = ONE_Q12 // 2
    loudness_limit: int = 0
    # Per predicted class (Q12; None: none): the loudness component's mean z on the
    # reference's inferences of that class less its mean over all, taken off the component's
    # z before anything reads it (see td_monitor.h). Measured on the quick keyword bench's
    # control population (1,200 clips): the predicted class explains 23 % of the loudness
    # variance (a silent clip sits 1.5 sd below a word).
    loudness_class_offset: np.ndarray | None = None
    # The quiet level's upward CUSUM (allowance loudness_k), DATA_DRIFT at quiet_limit (Q12;
    # 0 = off); see td_monitor.h.
    quiet_component: int = 0
    quiet_limit: int = 0
    enabled_scores: int = (1 << SCORE_COUNT) - 1
    score_offset: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(SCORE_COUNT, np.int32))
    score_gain_q16: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(SCORE_COUNT, np.int32))
    score_k: np.ndarray = dataclasses.field(default_factory=lambda: np.full(SCORE_COUNT, ONE_Q12 // 2, np.int32))
    score_warning: np.ndarray = dataclasses.field(default_factory=lambda: np.full(SCORE_COUNT, CUSUM_MAX, np.int32))
    score_drift: np.ndarray = dataclasses.field(default_factory=lambda: np.full(SCORE_COUNT, CUSUM_MAX, np.int32))
    # Per score: one inference whose z (Q12) reaches this latches at once (0: no such limit).
    score_limit: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(SCORE_COUNT, np.int32))
    # Per score: the long-run spread of z on the calibration's streams (0: not learned on the
    # device) and z's mean there, toward which a wider spread draws z (td_monitor_spread.c).
    score_spread_ref: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(SCORE_COUNT, np.int32))
    score_spread_centre: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(SCORE_COUNT, np.int32))
    ddm_min_labels: int = 30
    ddm_warning_q8: int = 2 * 256
    ddm_drift_q8: int = 3 * 256
    # The reference's error rate (Q16): the error-rate test starts as if its first
    # ddm_min_labels labels had come at it, so labels that begin only after a drift are judged
    # against it (0: from no best, the first labels setting it); td_monitor_feedback.c.
    ddm_reference_q16: int = 0
    # Inferences after a reset that learn the device's own reference (0: judge against the
    # training reference from the start); see td_monitor_commission.c.
    commission_n: int = 0
    # After commissioning, the confidence and entropy centres go on learning from calm
    # inferences until their weight reaches this, each commissioning inference weighing
    # 2^CENTRE_COMMISSION_SHIFT (0: they stay at the commissioning means); see
    # td_monitor_commission.c.
    centre_n: int = 0
    clip_level: int = 32767
    clip_rate_q16: int = ONE_Q16 // 100
    dc_level: int = 2000
    stuck_variance: int = 0
    silence_variance: int = 100
    # Blocks a condition must persist to be a fault (clipping, DC offset, stuck, silence; 320
    # samples each at 16 kHz, so 50 = 1 s). A block is stuck only when every sample in it is
    # the same, which real recordings at their own level almost never are (../shared/data:
    # 9 of 79,000 blocks, never two in a row); but a working microphone 20 dB too quiet reads
    # exact zeros through the pauses: at 1 s the wake-word bench called 10 of 64 such sessions
    # stuck (and a room 20 dB quieter 4), at 2.5 s none; the 300 speech_commands clips of
    # ../shared/data, shuffled end to end and turned down 20-36 dB, held exact zeros for at
    # most 1.24 s. Stuck waits 4 s: three times that, and a dead microphone's fault on the
    # 4th inference, where 5 s made the drift bench's MEWMA (3) 1.67x faster. A block held at a
    # value farther from zero than silence_variance's spread is a DC offset as well, at its 1 s:
    # a quiet microphone rests at exact zero (every stuck block of ../shared/data's recordings
    # is 0).
    persist_blocks: np.ndarray = dataclasses.field(default_factory=lambda: np.array([50, 50, 200, 0], np.uint16))
    # Light clipping: DATA_DRIFT when the EWMA (2^-CLIP_EWMA_SHIFT a block) share of clipping
    # blocks reaches this (Q16); 0 = off. 1 %: 40 of 4,096 blocks (80 s at 16 kHz). Measured on
    # real recordings (speech_commands subset) 0.11 % of blocks clip; a gain 12 dB up, 4.3 %.
    clip_drift_q16: int = ONE_Q16 // 100
    # ...once it has held that long (blocks, >= 1), and never after SENSOR_FAULT. 2,000 blocks
    # (40 s): a gain set wrong stays wrong, and a microphone that clips hard is named by its
    # CLIPPING fault first (measured on speech 30 dB too loud: its run of 50 blocks came within
    # 22 inferences in 9 of 10 streams, the 1 % share within 2).
    clip_drift_blocks: int = 2000
    # A sensor that fails on and off (td_sensor_intermittent.c): a CUSUM of dead time (each
    # inference's share of sensor blocks that lost the signal), less the same share while
    # commissioning plus dropout_margin (Q12), reaching dropout_limit (Q12; 0 = off) latches
    # SENSOR_FAULT. An eighth over the commissioning share, and 4 inferences' worth: a lone
    # dead stretch is under 4 s (at one inference a second; 4 s of stuck blocks are the stuck
    # fault) and stays below it. A microphone dead a clip in three is then found after a
    # median 20 inferences on the quick keyword bench (at 8 inferences' worth, 42), dead 3 s of
    # every 4 in about 6. A camera's lone runs are longer (export.CAMERA_SENSOR).
    dropout_margin: int = ONE_Q12 // 8
    dropout_limit: int = 4 * ONE_Q12
    entropy_q16: np.ndarray = dataclasses.field(default_factory=entropy_table_q16)
    # Host-only description (JSON, not C): what the summary channels and classes are, and
    # how the thresholds were obtained.
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ref_mean = _int_array(self.ref_mean, np.int16, None, "ref_mean")
        n = self.ref_mean.shape[0]
        self.inv_std_q28 = _int_array(self.inv_std_q28, np.int32, n, "inv_std_q28", "ref_mean")
        if self.whiten_q12 is not None:
            w = _as_array(self.whiten_q12, "whiten_q12")
            if w.shape != (n, n):
                raise TinydriftError(f"monitor config: whiten_q12 must be [{n}, {n}], got {w.shape}")
            self.whiten_q12 = _int_array(w.reshape(-1), np.int16, n * n, "whiten_q12").reshape(n, n)
        self.prior_q16 = _int_array(self.prior_q16, np.int32, None, "prior_q16")
        k = self.prior_q16.shape[0]
        self.inv_prior_q8 = _int_array(self.inv_prior_q8, np.int32, k, "inv_prior_q8", "prior_q16")
        for name in ("score_offset", "score_gain_q16", "score_k", "score_warning", "score_drift", "score_limit",
                     "score_spread_ref", "score_spread_centre"):
            setattr(self, name, _int_array(getattr(self, name), np.int32, SCORE_COUNT, name))
        self.persist_blocks = _int_array(self.persist_blocks, np.uint16, SENSOR_CONDITION_COUNT, "persist_blocks")
        if self.loudness_class_offset is not None:
            self.loudness_class_offset = _int_array(self.loudness_class_offset, np.int16, k, "loudness_class_offset",
                                                    "prior_q16")
        self.entropy_q16 = _int_array(self.entropy_q16, np.uint16, 256, "entropy_q16")
        for f in dataclasses.fields(self):
            if f.type == "int":
                setattr(self, f.name, int(getattr(self, f.name)))

    @property
    def n_summary(self) -> int:
        return int(self.ref_mean.shape[0])

    @property
    def n_classes(self) -> int:
        return int(self.prior_q16.shape[0])

    def validate(self) -> "MonitorConfig":
        """Raise TinydriftError unless td_monitor_check_config would accept this config."""

        def check(ok, what: str) -> None:
            if not ok:
                raise TinydriftError(f"monitor config: {what}")

        check(1 <= self.n_summary <= MAX_SUMMARY, f"n_summary {self.n_summary} not in 1..{MAX_SUMMARY} (rebuild the firmware with a larger TD_MONITOR_MAX_SUMMARY)")
        check(1 <= self.n_classes <= MAX_CLASSES, f"n_classes {self.n_classes} not in 1..{MAX_CLASSES} (rebuild with a larger TD_MONITOR_MAX_CLASSES)")
        for name in ("mean_shift", "var_shift", "label_shift", "display_shift"):
            check(0 <= getattr(self, name) <= MAX_SHIFT, f"{name} not in 0..{MAX_SHIFT}")
        check(0 <= self.atc_threshold <= 256, "atc_threshold not in 0..256")
        check(0 <= self.ref_confidence_q16 <= ONE_Q16, "ref_confidence_q16 not in 0..65536")
        check(0 <= self.ref_entropy_q16 <= 65535 * MAX_CLASSES, "ref_entropy_q16 out of range")
        check(0 <= self.ref_accuracy_q16 <= ONE_Q16, "ref_accuracy_q16 not in 0..65536")
        check(0 <= self.ddm_warning_q8 <= 65535 and 0 <= self.ddm_drift_q8 <= 65535, "DDM levels not in 0..65535")
        check(0 <= self.ddm_min_labels <= 2**32 - 1, "ddm_min_labels out of range")
        check(0 <= self.ddm_reference_q16 < ONE_Q16, "ddm_reference_q16 not in 0..65535")
        check(1 <= self.clip_level <= 32768, "clip_level not in 1..32768")
        check(0 <= self.clip_rate_q16 <= ONE_Q16, "clip_rate_q16 not in 0..65536")
        check(0 <= self.clip_drift_q16 <= ONE_Q16, "clip_drift_q16 not in 0..65536")
        check(1 <= self.clip_drift_blocks <= 65535, "clip_drift_blocks not in 1..65535")
        check(0 <= self.dropout_margin <= ONE_Q12, f"dropout_margin not in 0..{ONE_Q12}")
        check(0 <= self.dropout_limit <= CUSUM_MAX, "dropout_limit not in 0..2^30")
        check(-(2**31) <= self.dc_level < 2**31, "dc_level out of int32")
        check(0 <= self.stuck_variance < 2**32 and 0 <= self.silence_variance < 2**32, "variance levels out of uint32")
        check(-(2**31) <= self.moved_mean_level < 2**31 and -(2**31) <= self.moved_var_level < 2**31, "moved levels out of int32")
        check(0 <= self.attribute_moved <= 65535, "attribute_moved not in 0..65535")
        check(0 <= self.loudness_limit <= CUSUM_MAX, "loudness_limit not in 0..2^30")
        check(0 <= self.loudness_component < self.n_summary, "loudness_component not a summary value")
        check(0 <= self.loudness_k <= CHANNEL_Z_MAX, f"loudness_k not in 0..{CHANNEL_Z_MAX}")
        check(0 <= self.quiet_limit <= CUSUM_MAX, "quiet_limit not in 0..2^30")
        check(self.loudness_class_offset is None or np.all(np.abs(self.loudness_class_offset.astype(np.int64))
                                                           <= CHANNEL_Z_MAX),
              f"loudness_class_offset not in -{CHANNEL_Z_MAX}..{CHANNEL_Z_MAX}")
        check(0 <= self.quiet_component < self.n_summary, "quiet_component not a summary value")
        check(0 <= self.enabled_scores < 2**32, "enabled_scores out of uint32")
        check(0 <= self.commission_n <= MAX_COMMISSION, f"commission_n not in 0..{MAX_COMMISSION}")
        check(0 <= self.centre_n <= 0xFFFF, "centre_n not in 0..65535")
        check(np.all((self.inv_std_q28 >= 1) & (self.inv_std_q28 <= 1 << 28)), "inv_std_q28 not in 1..2^28")
        check(np.all((self.prior_q16 >= 0) & (self.prior_q16 <= ONE_Q16)), "prior_q16 not in 0..65536")
        check(np.all((self.inv_prior_q8 >= 0) & (self.inv_prior_q8 <= 1 << 24)), "inv_prior_q8 not in 0..2^24")
        check(np.all(np.abs(self.score_offset.astype(np.int64)) <= 1 << 30), "score offsets beyond 2^30")
        check(np.all(np.abs(self.score_gain_q16.astype(np.int64)) <= 1 << 28), "score gains beyond 2^28")
        check(np.all((self.score_k >= 0) & (self.score_k <= 1 << 24)), "score k not in 0..2^24")
        check(np.all((self.score_limit >= 0) & (self.score_limit <= SCORE_Z_MAX)), "score limits not in 0..65536")
        check(np.all((self.score_spread_ref >= 0) & (self.score_spread_ref <= SPREAD_REF_MAX)), "score_spread_ref not in 0..2^28")
        check(np.all(np.abs(self.score_spread_centre.astype(np.int64)) <= SCORE_Z_MAX), "score_spread_centre not in -65536..65536")
        for name in ("score_warning", "score_drift"):
            v = getattr(self, name)
            check(np.all((v >= 1) & (v <= CUSUM_MAX)), f"{name} not in 1..2^30")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the same config (integers and lists of integers)."""
        out: dict[str, Any] = {"abi_version": ABI_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                value = value.astype(np.int64).tolist()
            elif f.name == "metadata":
                value = jsonable(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MonitorConfig":
        if not isinstance(data, dict):
            raise TinydriftError(f"monitor config: expected a JSON object, found {type(data).__name__}")
        data = dict(data)
        version = data.pop("abi_version", ABI_VERSION)
        if version not in READABLE_ABI_VERSIONS:
            raise TinydriftError(
                f"monitor config has ABI version {version}, this tinydrift expects {ABI_VERSION}: regenerate it"
            )
        if version < 6:  # written before light clipping and attribution by moved components: both off, as they were
            data.setdefault("clip_drift_q16", 0)
            data.setdefault("attribute_moved", 0)
        if version == 9:
            data.pop("loudness_shift", None)
            data["loudness_limit"] = 0
        if version < 14:  # no test of a sensor that fails on and off: off, as it was
            data.setdefault("dropout_limit", 0)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise TinydriftError(f"monitor config: unknown fields {sorted(unknown)}")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.name not in data and f.name != "metadata"
                   and ADDED_IN_ABI.get(f.name, 0) <= version]
        if missing:
            raise TinydriftError(f"monitor config: missing fields {missing}")
        # JSON gives any type; the C struct's scalars are integers (bool is an int to Python, not here)
        wrong = [f.name for f in fields if f.name in data and f.type == "int"
                 and (isinstance(data[f.name], bool) or not isinstance(data[f.name], int))]
        if wrong:
            raise TinydriftError(f"monitor config: {', '.join(wrong)} must be integers")
        if not isinstance(data.get("metadata", {}), dict):
            raise TinydriftError("monitor config: metadata must be an object")
        return cls(**data)

    @classmethod
    def of_model(cls, folder: ModelDir) -> "MonitorConfig":
        """The config in a model folder's reference.json, checked as the firmware would check it."""
        data = folder.monitor_config()  # reference.json's own checks name their key
        try:
            return cls.from_dict(data).validate()
        except TinydriftError as e:
            source = folder.monitor_json if folder.is_detector else folder.reference_json
            raise folder.damaged(source, "monitor_config", f"is not usable ({e})") from None

    def replace(self, **changes) -> "MonitorConfig":
        return dataclasses.replace(self, **changes)


def jsonable(value):
    """Plain JSON values: numpy scalars and arrays as Python numbers and lists, and a
    non-finite float (an ARL0 with no alarm) as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
