"""Reference statistics of the in-domain data, and the monitor config built from them.

The statistics come from held-out in-domain samples pushed through the int8 model (the
caller provides the arrays): per-channel moments of the input summary, the confidence and
entropy of the int8 output, predicted-class priors, accuracy and the ATC threshold.
`build_config` turns them into the firmware's fixed point with placeholder decision
levels; `calibrate.calibrate_thresholds` replaces those with calibrated ones.
"""

from __future__ import annotations

import math

import numpy as np

from tinydrift.errors import TinydriftError
from tinydrift.monitor.config import (
    CHANNEL_Z_MAX,
    CUSUM_MAX,
    ONE_Q12,
    ONE_Q16,
    SCORE_CONF,
    SCORE_COUNT,
    SCORE_ENTROPY,
    SCORE_LABEL,
    SCORE_MEAN,
    SCORE_VAR,
    MonitorConfig,
    entropy_table_q16,
)

MIN_REFERENCE_SAMPLES = 2000  # fewer samples bias the reference and cut ARL0

# CUSUM allowance per score in units of the score's standard deviation. The per-inference
# confidence and entropy are noisy, and an accuracy drop of a few points moves their mean
# by a fraction of their spread, so their allowance is small. The EWMA scores are smooth:
# a small allowance would integrate the persistent offset a finite reference leaves
# (speakers not in it), so one standard deviation at least (measured on synthetic data with
# speaker effects: k = 0.5 made the ARL0 hinge on which speakers the check used). The data
# score (the MEWMA statistic of the whitened summary) takes 2: the CUSUM then adds up only
# what rises clearly above the statistic's no-drift spread, nearer the MEWMA chart's own
# control limit. Measured with the drift bench (quick, shipped ARL0 100,000) for k = 1 / 2 / 3:
# band limits and an 8 kHz path found after 35-38 / 22-26 / 17-20 inferences, white noise
# 10 and 0 dB 90, 64 / 73, 53 / 66, 48, gain -20 dB 66 / 54 / 48, but a +12 dB gain (a shift
# no larger than harmless populations' own) detected within 1,000 inferences in 93 / 80 / 57 %
# of streams; the unseen populations' ARL0 stayed at x0.95 of the target or above.
# Confidence and entropy at 0.375 / 0.5 instead of 0.25 (the same bench, with the loudness
# value): white noise at 0 dB 67 -> 43 / 37, babble 59.5 -> 37.5 / 34, reverberation
# 78 -> 54 / 50, an accent 177 -> 161 / 206 (95 % found), but the Scottish one-voice control
# 77 -> 132 / 120 false alarms, the unseen populations' pooled ARL0 116,724 -> 85,958 /
# 91,365 (under the target), and the export's check on `test` 500,000 -> 133,333 / 64,935.
DEFAULT_K_SIGMA = (2.0, 1.0, 0.25, 0.25, 1.0)


def output_features(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Per inference: predicted class, confidence index (max prob * 256, 0..255) and entropy
    (Q16 nats), exactly as the firmware computes them from the int8 softmax output."""
    probs = np.asarray(probs)
    if probs.dtype != np.int8 or probs.ndim != 2:
        raise TinydriftError(f"probs must be int8 [N, n_classes], got {probs.dtype} {probs.shape}")
    q = probs.astype(np.int64)
    table = entropy_table_q16().astype(np.int64)
    return {
        "predicted": np.argmax(q, axis=1),
        "confidence": q.max(axis=1) + 128,
        "entropy_q16": table[q + 128].sum(axis=1),
    }


def atc_threshold(confidence: np.ndarray, accuracy: float) -> tuple[int, float]:
    """ATC (Garg et al. 2022): the confidence index t (0..256) whose share of source
    samples with confidence >= t is closest to the source accuracy; returns (t, share)."""
    counts = np.bincount(np.asarray(confidence, dtype=np.int64), minlength=257)[:257]
    share_at_least = counts[::-1].cumsum()[::-1] / max(1, len(confidence))  # share with conf >= t
    t = int(np.argmin(np.abs(share_at_least - accuracy)))
    return t, float(share_at_least[t])


def reference_stats(
    summaries: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    min_samples: int = MIN_REFERENCE_SAMPLES,
) -> dict:
    """Reference statistics from N in-domain samples.

    summaries: int16 [N, C] input summaries (e.g. td_summarize_frames of the int8 features);
    probs: int8 [N, K] softmax outputs of the int8 model; labels: optional true classes,
    for accuracy, error rate and the ATC threshold (without them the mean confidence stands
    in for the accuracy, which assumes a calibrated model)."""
    summaries = np.asarray(summaries)
    probs = np.asarray(probs)
    if summaries.ndim != 2 or summaries.dtype != np.int16:
        raise TinydriftError(f"summaries must be int16 [N, C], got {summaries.dtype} {summaries.shape}")
    n = summaries.shape[0]
    if probs.shape[0] != n:
        raise TinydriftError(f"{n} summaries but {probs.shape[0]} probability rows")
    if n < min_samples:
        raise TinydriftError(
            f"reference statistics need at least {min_samples} in-domain samples, got {n}: "
            "give more reference data of the model's domain"
        )
    k = probs.shape[1]
    out = output_features(probs)
    x = summaries.astype(np.float64)
    counts = np.bincount(out["predicted"], minlength=k)
    conf = out["confidence"].astype(np.float64)
    entropy = out["entropy_q16"].astype(np.float64) / ONE_Q16
    with np.errstate(invalid="ignore", divide="ignore"):  # a constant channel: no correlation (0)
        corr = np.nan_to_num(np.corrcoef(x, rowvar=False).reshape(x.shape[1], x.shape[1]), nan=0.0)
    stats = {
        "n": int(n),
        "n_summary": int(summaries.shape[1]),
        "n_classes": int(k),
        "summary_mean": x.mean(axis=0).tolist(),
        "summary_std": x.std(axis=0, ddof=1).tolist(),
        "summary_corr": corr.tolist(),
        "confidence_mean": float(conf.mean() / 256),
        "confidence_std": float(conf.std(ddof=1) / 256),
        "entropy_mean": float(entropy.mean()),
        "entropy_std": float(entropy.std(ddof=1)),
        "predicted_counts": counts.tolist(),
        # each predicted class's mean summary (the overall mean where a class never came)
        "summary_class_mean": np.array([x[out["predicted"] == c].mean(axis=0) if counts[c] else x.mean(axis=0)
                                        for c in range(k)]).tolist(),
        # Jeffreys-smoothed, so a class the reference never predicted keeps a finite weight.
        "class_prior": ((counts + 0.5) / (n + 0.5 * k)).tolist(),
        "accuracy": None,
        "error_rate": None,
    }
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise TinydriftError(f"labels must be a vector of {n} classes")
        accuracy = float(np.mean(out["predicted"] == labels))
        stats["accuracy"] = accuracy
        stats["error_rate"] = 1.0 - accuracy
    else:
        accuracy = stats["confidence_mean"]
    stats["atc_threshold"], stats["atc_share"] = atc_threshold(out["confidence"], accuracy)
    return stats


# Half way to identity (a ridge of one mean eigenvalue): on models/kws's pools the
# statistic's power (shift / null spread) for band-limit shifts is ~4x that of channels
# taken one by one and ~1.2x that of plain whitening (0.1), while for common-mode shifts
# (gain, broadband noise: 83-98 % on the first principal component) it keeps ~0.7-1x of
# the one-by-one power where plain whitening keeps ~0.3-0.5x.
DEFAULT_SHRINKAGE = 0.5


def whitening_q12(corr, shrinkage: float = DEFAULT_SHRINKAGE, apart: tuple[int, ...] = ()) -> np.ndarray:
    """ZCA whitening of the reference correlation, shrunk toward identity, in Q12: the
    symmetric W with W R W = I, so component j stays closest to channel j (the moved-channel
    mask keeps its meaning). Shrinkage bounds the gain on directions the reference barely
    saw vary, where its estimation error would be amplified, and keeps the dominant
    common-mode direction (loudness, broadband noise) from being discounted. Components in
    `apart` are left as they are (W's rows and columns of identity)."""
    r = np.array(corr, dtype=np.float64)
    for j in apart:
        r[j, :] = r[:, j] = 0.0
        r[j, j] = 1.0
    r = (1.0 - shrinkage) * r + shrinkage * np.eye(r.shape[0])
    values, vectors = np.linalg.eigh(r)
    w = (vectors / np.sqrt(np.maximum(values, 1e-6))) @ vectors.T
    return np.clip(np.round(w * ONE_Q12), -32768, 32767).astype(np.int16)


def _ewma_variance(shift: int) -> float:
    lam = 2.0**-shift
    return lam / (2.0 - lam)


def _gain_q16(sd_raw: float, sign: int = 1) -> int:
    """gain such that (raw - offset) * gain >> 16 is in Q12 units of sd_raw."""
    return sign * int(min(1 << 28, max(1, round((1 << 28) / max(sd_raw, 1.0)))))


# A class predicted n times in the reference takes n / (n + this) of its mean loudness as its
# offset: a class seen a few times moves the loudness by what its few clips happened to be.
CLASS_LOUDNESS_PRIOR = 10


def loudness_class_offset_q12(stats: dict, mean: np.ndarray, std: np.ndarray, whiten_q12: np.ndarray | None,
                              component: int) -> np.ndarray:
    """Per predicted class, the mean of the loudness component's z (standardized, then
    decorrelated as the device does) on the reference's inferences of that class, in Q12:
    what td_monitor_moments takes off that component's z (shrunk toward 0 for a rare class)."""
    class_mean = np.asarray(stats["summary_class_mean"], dtype=np.float64)
    z = (class_mean - mean) / std  # [K, C]
    if whiten_q12 is not None:
        z = z @ (np.asarray(whiten_q12, np.float64) / ONE_Q12).T
    counts = np.asarray(stats["predicted_counts"], dtype=np.float64)
    offset = z[:, component] * counts / (counts + CLASS_LOUDNESS_PRIOR)
    return np.clip(np.round(offset * ONE_Q12), -CHANNEL_Z_MAX, CHANNEL_Z_MAX).astype(np.int16)


def build_config(
    stats: dict,
    *,
    mean_shift: int = 5,
    var_shift: int = 6,
    label_shift: int = 6,
    display_shift: int = 6,
    k_sigma: tuple[float, ...] = DEFAULT_K_SIGMA,
    moved_sigma: float = 4.0,
    whiten: bool = True,
    shrinkage: float = DEFAULT_SHRINKAGE,
    unwhitened: tuple[int, ...] = (),
    enabled_scores: int = (1 << SCORE_COUNT) - 1,
    class_loudness: bool = False,
    metadata: dict | None = None,
    **sensor_and_ddm,
) -> MonitorConfig:
    """A config from reference statistics, with analytic score normalization (independent
    channels, Gaussian summaries) and decision levels that never fire: calibrate next.

    whiten: decorrelate the standardized summary with the reference correlation (ZCA), so
    a shift across correlated channels is judged against how they move together; the
    components in `unwhitened` are left out of it.
    class_loudness: with a loudness_component (in `sensor_and_ddm`), take each predicted
    class's mean of that component's z off it (loudness_class_offset_q12).
    `sensor_and_ddm` may set any of MonitorConfig's sensor and DDM fields."""
    mean = np.asarray(stats["summary_mean"], dtype=np.float64)
    std = np.maximum(np.asarray(stats["summary_std"], dtype=np.float64), 1.0)
    prior = np.asarray(stats["class_prior"], dtype=np.float64)
    c, k = len(mean), len(prior)
    v_mean = _ewma_variance(mean_shift)
    v_var = _ewma_variance(var_shift)
    v_label = _ewma_variance(label_shift)

    offset = np.zeros(SCORE_COUNT)
    sd = np.ones(SCORE_COUNT)
    offset[SCORE_MEAN] = c * v_mean * ONE_Q12
    sd[SCORE_MEAN] = math.sqrt(2 * c) * v_mean * ONE_Q12
    # (EWMA variance ratio - 1)^2 is about 2 v chi2(1) per channel for Gaussian data.
    offset[SCORE_VAR] = c * 2 * v_var * ONE_Q12
    sd[SCORE_VAR] = math.sqrt(2 * c) * 2 * v_var * ONE_Q12
    offset[SCORE_CONF] = stats["confidence_mean"] * 256
    sd[SCORE_CONF] = stats["confidence_std"] * 256
    offset[SCORE_ENTROPY] = stats["entropy_mean"] * ONE_Q16
    sd[SCORE_ENTROPY] = stats["entropy_std"] * ONE_Q16
    offset[SCORE_LABEL] = (k - 1) * v_label * ONE_Q12
    sd[SCORE_LABEL] = math.sqrt(2 * max(k - 1, 1)) * v_label * ONE_Q12
    sign = np.ones(SCORE_COUNT, dtype=int)
    sign[SCORE_CONF] = -1  # confidence dropping is the drift

    whiten_q12 = whitening_q12(stats["summary_corr"], shrinkage, unwhitened) if whiten and c > 1 else None
    if class_loudness and "loudness_component" in sensor_and_ddm:
        sensor_and_ddm = {**sensor_and_ddm, "loudness_class_offset": loudness_class_offset_q12(
            stats, mean, std, whiten_q12, int(sensor_and_ddm["loudness_component"]))}
    config = MonitorConfig(
        whiten_q12=whiten_q12,
        ref_mean=np.clip(np.round(mean), -32768, 32767).astype(np.int16),
        inv_std_q28=np.clip(np.round((1 << 28) / std), 1, 1 << 28).astype(np.int32),
        prior_q16=np.clip(np.round(prior * ONE_Q16), 0, ONE_Q16).astype(np.int32),
        inv_prior_q8=np.clip(np.round(256.0 / np.maximum(prior, 2.0**-16)), 0, 1 << 24).astype(np.int32),
        ref_confidence_q16=int(round(stats["confidence_mean"] * ONE_Q16)),
        ref_entropy_q16=int(round(stats["entropy_mean"] * ONE_Q16)),
        atc_threshold=int(stats["atc_threshold"]),
        ref_accuracy_q16=int(round(stats["atc_share"] * ONE_Q16)),
        mean_shift=mean_shift,
        var_shift=var_shift,
        label_shift=label_shift,
        display_shift=display_shift,
        moved_mean_level=int(round(moved_sigma * math.sqrt(v_mean) * ONE_Q12)),
        moved_var_level=int(round(moved_sigma * math.sqrt(2 * v_var) * ONE_Q12)),
        enabled_scores=enabled_scores,
        score_offset=np.round(offset).astype(np.int64),
        score_gain_q16=[_gain_q16(s, g) for s, g in zip(sd, sign)],
        score_k=[int(round(x * ONE_Q12)) for x in k_sigma],
        score_warning=np.full(SCORE_COUNT, CUSUM_MAX),
        score_drift=np.full(SCORE_COUNT, CUSUM_MAX),
        metadata=dict(metadata or {}, reference={key: stats[key] for key in ("n", "accuracy", "atc_threshold", "atc_share")}),
        **sensor_and_ddm,
    )
    return config.validate()
