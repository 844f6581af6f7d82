"""Synthetic monitor inputs with the structure of the real ones, for testing the monitor
and its calibration before a trained model exists, and for drift scenarios.

Summaries: per-channel means with a shared "loudness" factor across channels, a per-group
(speaker/recording) offset and AR(1) correlation between consecutive samples of a group,
the known traps (correlated inferences, small references). Outputs: int8 softmax vectors (scale 1/256, zero point -128)
whose top class is right with a given accuracy and whose confidence is higher when right.
"""

from __future__ import annotations

import numpy as np


def quantize_softmax(p: np.ndarray) -> np.ndarray:
    """Float probabilities to the int8 softmax output: round(p * 256) - 128, saturated."""
    return np.clip(np.round(p * 256.0) - 128, -128, 127).astype(np.int8)


def world(n_summary: int = 40, n_classes: int = 12, seed: int = 1234) -> dict:
    """The fixed part of a synthetic domain: channel means and spreads, class priors."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(n_classes, 8.0))
    return {
        "mean": rng.uniform(-6000, 2000, n_summary),
        "std": rng.uniform(300, 1200, n_summary),
        "class_prior": prior,
    }


def synthetic_dataset(
    n_groups: int = 40,
    per_group: int = 60,
    *,
    domain: dict | None = None,
    seed: int = 0,
    accuracy: float = 0.93,
    class_prior: np.ndarray | None = None,
    channel_shift: np.ndarray | None = None,
    channel_scale: np.ndarray | None = None,
    group_share: float = 0.15,
    common_share: float = 0.5,
    ar: float = 0.5,
    sharpness: float = 1.0,
) -> dict:
    """A data set of n_groups * per_group samples, groups stored one after another.

    channel_shift / channel_scale move channel means by fractions of their standard
    deviation and scale their spread (data drift); accuracy, sharpness (confidence) and
    class_prior (label shift) change the outputs. Returns summaries int16 [N, C], probs
    int8 [N, K], labels, predicted, groups."""
    domain = domain or world()
    rng = np.random.default_rng(seed)
    mu, sd = domain["mean"], domain["std"]
    c = len(mu)
    prior = np.asarray(domain["class_prior"] if class_prior is None else class_prior, dtype=np.float64)
    k = len(prior)
    n = n_groups * per_group

    # Unit-variance latent: group offset + AR(1) within the group, common factor + own noise.
    within = 1.0 - group_share
    group_offset = rng.normal(0, np.sqrt(group_share), (n_groups, c))
    innovations_common = rng.normal(0, 1, (n_groups, per_group))
    innovations_own = rng.normal(0, 1, (n_groups, per_group, c))
    latent = np.zeros((n_groups, per_group, c))
    common = np.zeros(n_groups)
    own = np.zeros((n_groups, c))
    scale = np.sqrt(1 - ar * ar)
    for i in range(per_group):
        common = innovations_common[:, i] if i == 0 else ar * common + scale * innovations_common[:, i]
        own = innovations_own[:, i] if i == 0 else ar * own + scale * innovations_own[:, i]
        latent[:, i] = np.sqrt(within) * (np.sqrt(common_share) * common[:, None] + np.sqrt(1 - common_share) * own)
    latent += group_offset[:, None, :]
    latent = latent.reshape(n, c)
    if channel_scale is not None:
        latent = latent * np.asarray(channel_scale)
    if channel_shift is not None:
        latent = latent + np.asarray(channel_shift)
    summaries = np.clip(np.round(mu + sd * latent), -32768, 32767).astype(np.int16)

    labels = rng.choice(k, size=n, p=prior / prior.sum())
    correct = rng.random(n) < accuracy
    wrong = (labels + rng.integers(1, k, n)) % k if k > 1 else labels
    predicted = np.where(correct, labels, wrong)
    logits = rng.normal(0, 1, (n, k))
    margin = np.where(correct, rng.gamma(4.0, 1.2, n), rng.gamma(2.0, 0.6, n)) * sharpness
    logits[np.arange(n), predicted] = logits.max(axis=1) + margin
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    probs = quantize_softmax(p)
    return {
        "summaries": summaries,
        "probs": probs,
        "labels": labels,
        "predicted": np.argmax(probs.astype(np.int64), axis=1),
        "groups": np.repeat(np.arange(n_groups), per_group),
    }


def random_config(rng: np.random.Generator, n_summary: int = 40, n_classes: int = 12, *, extreme: bool = False):
    """A valid monitor config with random values, for bit-exactness tests. extreme=True
    draws every field across its whole accepted range (shifts 0..15, gains up to 2^28,
    levels down to 1, priors 0 or 1, ...), which drives every clamp and saturation."""
    from tinydrift.monitor.config import (CHANNEL_Z_MAX, CUSUM_MAX, ONE_Q12, ONE_Q16, SCORE_COUNT, SCORE_Z_MAX,
                                          MonitorConfig)

    def pick(*choices):
        return choices[rng.integers(len(choices))]

    c, k = n_summary, n_classes
    if extreme:
        inv_std = np.where(rng.random(c) < 0.3, rng.choice([1, 1 << 28], c), rng.integers(1, (1 << 28) + 1, c))
        prior = rng.choice([0, ONE_Q16, *rng.integers(0, ONE_Q16 + 1, 4)], k)
        inv_prior = rng.integers(0, (1 << 24) + 1, k)
        fields = dict(
            ref_mean=rng.integers(-32768, 32768, c),
            mean_shift=int(rng.integers(0, 16)),
            var_shift=int(rng.integers(0, 16)),
            label_shift=int(rng.integers(0, 16)),
            display_shift=int(rng.integers(0, 16)),
            score_offset=rng.integers(-(1 << 30), (1 << 30) + 1, SCORE_COUNT),
            score_gain_q16=rng.integers(-(1 << 28), (1 << 28) + 1, SCORE_COUNT),
            # Log-uniform, so small levels that fire at once and huge ones both occur.
            score_k=np.floor(2.0 ** rng.uniform(0, 24, SCORE_COUNT)) - 1,
            score_warning=np.floor(2.0 ** rng.uniform(0, 30, SCORE_COUNT)),
            score_drift=np.floor(2.0 ** rng.uniform(0, 30, SCORE_COUNT)),
            moved_mean_level=int(rng.integers(-100, 40000)),
            moved_var_level=int(rng.integers(-100, 300000)),
            atc_threshold=int(pick(0, 256, rng.integers(0, 257))),
            ref_confidence_q16=int(rng.integers(0, ONE_Q16 + 1)),
            # within what a build sized for k classes accepts (65535 per class)
            ref_entropy_q16=int(rng.integers(0, 65535 * k + 1)),
            ref_accuracy_q16=int(rng.integers(0, ONE_Q16 + 1)),
            enabled_scores=int(rng.integers(0, 32)),
            ddm_min_labels=int(rng.integers(0, 60)),
            ddm_warning_q8=int(rng.integers(0, 65536)),
            ddm_drift_q8=int(rng.integers(0, 65536)),
            clip_level=int(pick(1, 32768, rng.integers(1, 32769))),
            clip_rate_q16=int(pick(0, ONE_Q16, rng.integers(0, ONE_Q16 + 1))),
            dc_level=int(rng.integers(-10, 40000)),
            stuck_variance=int(pick(0, rng.integers(0, 2**32))),
            silence_variance=int(rng.integers(0, 2**32)),
            persist_blocks=rng.integers(0, 4, 4),
        )
    else:
        std = rng.uniform(200, 1500, c)
        p = rng.dirichlet(np.full(k, 4.0))
        inv_std = np.round((1 << 28) / std)
        prior = np.round(p * ONE_Q16)
        inv_prior = np.round(256 / p)
        fields = dict(
            ref_mean=rng.integers(-6000, 2000, c),
            mean_shift=int(rng.integers(3, 8)),
            var_shift=int(rng.integers(3, 8)),
            label_shift=int(rng.integers(3, 8)),
            display_shift=int(rng.integers(3, 8)),
            score_offset=[2000, 6000, 220, 30000, 300],
            score_gain_q16=rng.integers(1000, 100000, SCORE_COUNT) * np.array([1, 1, -60, 1, 10]),
            score_k=rng.integers(500, 8000, SCORE_COUNT),
            score_warning=rng.integers(20000, 100000, SCORE_COUNT),
            score_drift=rng.integers(100000, 400000, SCORE_COUNT),
            moved_mean_level=int(rng.integers(1000, 3000)),
            moved_var_level=int(rng.integers(2000, 8000)),
            atc_threshold=int(rng.integers(150, 240)),
            ref_confidence_q16=int(rng.integers(40000, 60000)),
            ref_entropy_q16=int(rng.integers(10000, 60000)),
            ref_accuracy_q16=int(rng.integers(40000, 60000)),
            ddm_min_labels=30,
            clip_level=32000,
            clip_rate_q16=ONE_Q16 // 100,
            dc_level=2000,
            stuck_variance=4,
            silence_variance=400,
            persist_blocks=[3, 3, 3, 0],
        )
    # the error-rate test's seed, from what was drawn (a draw of its own would move every later
    # one, and with it the streams other tests were written against): 0 in about half
    if extreme:
        drift = int(fields["ddm_drift_q8"])
        fields["ddm_reference_q16"] = drift * 37 % ONE_Q16 if drift % 2 else 0
    else:
        fields["ddm_reference_q16"] = 3277  # 5 %
    whiten = None
    if rng.random() < 0.5:
        if extreme:
            whiten = rng.integers(-32768, 32768, (c, c))
        else:
            whiten = np.clip(np.round(4096 * (np.eye(c) + rng.normal(0, 0.1, (c, c)))), -32768, 32767)
    if rng.random() < 0.6:
        # a device that learns its own reference first (of whitened components, if whitened)
        fields["commission_n"] = int(pick(1, 1024, rng.integers(1, 1025))) if extreme else int(rng.integers(2, 200))
    # Score limits drawn last, so the draws above stay those of configs without them. Some
    # off; the realistic ones within reach of a drifted z.
    top = (1, SCORE_Z_MAX + 1) if extreme else (8000, 40000)
    fields["score_limit"] = np.where(rng.random(SCORE_COUNT) < 0.4, 0, rng.integers(*top, SCORE_COUNT))
    # light clipping: off, or a level a run of clipping blocks reaches within the stream
    fields["clip_drift_q16"] = int(pick(0, rng.integers(1, ONE_Q16 + 1))) if extreme else int(pick(0, rng.integers(16, 700)))
    fields["clip_drift_blocks"] = int(pick(1, 65535, rng.integers(1, 65536))) if extreme else int(rng.integers(1, 300))
    fields["attribute_moved"] = int(pick(0, 1, 65535, rng.integers(0, 65536))) if extreme else int(rng.integers(0, 5))
    # long-run spread: off for some scores; the realistic ones around what blocks of these
    # streams' z read, so that some devices learn a wider spread and some never do
    if extreme:
        spread = np.where(rng.random(SCORE_COUNT) < 0.3, rng.choice([0, 1, 1 << 28], SCORE_COUNT),
                          rng.integers(0, (1 << 28) + 1, SCORE_COUNT))
        centre = rng.integers(-SCORE_Z_MAX, SCORE_Z_MAX + 1, SCORE_COUNT)
    else:
        spread = np.where(rng.random(SCORE_COUNT) < 0.3, 0, np.floor(2.0 ** rng.uniform(6, 22, SCORE_COUNT)))
        centre = rng.integers(-8000, 8000, SCORE_COUNT)
    fields["score_spread_ref"], fields["score_spread_centre"] = spread, centre
    # centres refined after commissioning: off, or a weight the streams reach (a commissioning
    # inference weighs 4), or past them
    if extreme:
        fields["centre_n"] = int(pick(0, 1, 65535, rng.integers(0, 65536)))
    else:
        fields["centre_n"] = int(pick(0, rng.integers(1, 4000)))
    # loudness limit: off, or on any component; the realistic ones within reach of a CUSUM of
    # a moved component
    fields["loudness_component"] = int(rng.integers(0, c))
    if extreme:
        fields["loudness_k"] = int(pick(0, CHANNEL_Z_MAX, rng.integers(0, CHANNEL_Z_MAX + 1)))
        fields["loudness_limit"] = int(pick(0, 1, CUSUM_MAX, rng.integers(0, CUSUM_MAX + 1)))
    else:
        fields["loudness_k"] = int(rng.integers(1000, 4097))
        fields["loudness_limit"] = int(pick(0, rng.integers(8000, 250_000)))
    # quiet limit: the same, on another (or the same) component, upward only; drawn from a
    # child generator, so that what the caller draws from `rng` afterwards is as before it
    child = rng.spawn(1)[0]
    fields["quiet_component"] = int(child.integers(0, c))
    if extreme:
        fields["quiet_limit"] = int(child.choice([0, 1, CUSUM_MAX, int(child.integers(0, CUSUM_MAX + 1))]))
    else:
        fields["quiet_limit"] = int(child.choice([0, int(child.integers(8000, 250_000))]))
    # loudness offsets per predicted class: none, or any (extreme: to the clamp's edges), from a
    # child of the child, for the same reason
    grandchild = child.spawn(1)[0]
    k = len(prior)
    if grandchild.random() < 0.5:
        fields["loudness_class_offset"] = None
    elif extreme:
        fields["loudness_class_offset"] = np.where(grandchild.random(k) < 0.3,
                                                   grandchild.choice([-CHANNEL_Z_MAX, CHANNEL_Z_MAX], k),
                                                   grandchild.integers(-CHANNEL_Z_MAX, CHANNEL_Z_MAX + 1, k))
    else:
        fields["loudness_class_offset"] = grandchild.integers(-8000, 8001, k)
    # a sensor that fails on and off: off, or an allowance and a limit within reach of these
    # streams' dropouts (a child again, for the same reason)
    dropouts = grandchild.spawn(1)[0]
    if extreme:
        fields["dropout_margin"] = int(dropouts.choice([0, ONE_Q12, int(dropouts.integers(0, ONE_Q12 + 1))]))
        fields["dropout_limit"] = int(dropouts.choice([0, 1, CUSUM_MAX, int(dropouts.integers(0, CUSUM_MAX + 1))]))
    else:
        fields["dropout_margin"] = int(dropouts.integers(0, 400))
        fields["dropout_limit"] = int(dropouts.choice([0, int(dropouts.integers(4096, 40000))]))
    return MonitorConfig(inv_std_q28=inv_std, prior_q16=prior, inv_prior_q8=inv_prior, whiten_q12=whiten, **fields).validate()


def _segment_summaries(rng, kind: int, n: int, config) -> np.ndarray:
    c = config.n_summary
    base = config.ref_mean.astype(np.int64)
    if kind == 0:  # around the reference, a few standard deviations
        std = np.maximum((1 << 28) / config.inv_std_q28.astype(np.float64), 1.0)
        x = base + rng.normal(0, 1, (n, c)) * np.minimum(std, 20000) * rng.uniform(0.5, 3)
    elif kind == 1:  # anything an int16 can hold
        x = rng.integers(-32768, 32768, (n, c))
    elif kind == 2:  # constant
        x = np.broadcast_to(rng.integers(-32768, 32768, c), (n, c))
    elif kind == 3:  # alternating full-scale extremes
        x = np.where((np.arange(n)[:, None] + np.arange(c)) % 2 == 0, -32768, 32767)
    elif kind == 4:  # all at one rail
        x = np.full((n, c), -32768 if rng.random() < 0.5 else 32767)
    else:  # a shifted subset of channels
        x = base + rng.normal(0, 300, (n, c)) + np.where(rng.random(c) < 0.3, rng.integers(-20000, 20000), 0)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def _segment_probs(rng, kind: int, n: int, k: int) -> np.ndarray:
    if kind == 0:  # softmax-like: one class dominant
        logits = rng.normal(0, 1, (n, k))
        logits[np.arange(n), rng.integers(0, k, n)] += rng.gamma(3.0, 1.5, n)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        return quantize_softmax(p / p.sum(axis=1, keepdims=True))
    if kind == 1:
        return rng.integers(-128, 128, (n, k)).astype(np.int8)
    if kind == 2:
        return np.full((n, k), -128, np.int8)
    if kind == 3:
        return np.full((n, k), 127, np.int8)
    return np.broadcast_to(rng.integers(-128, 128, k), (n, k)).astype(np.int8)


def softmax_like_probs(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    """n int8 softmax outputs with one dominant class each (random class and margin)."""
    return _segment_probs(rng, 0, n, n_classes)


def _sensor_block(rng, n: int) -> np.ndarray:
    kind = rng.integers(0, 7)
    if kind == 0:
        x = np.zeros(n)
    elif kind == 1:  # clipped square wave
        x = np.where(np.arange(n) % 40 < 20, 32767, -32768)
    elif kind == 2:  # DC offset
        x = rng.integers(-5000, 5000) + rng.normal(0, 200, n)
    elif kind == 3:  # quiet
        x = rng.normal(0, 5, n)
    elif kind == 4:  # constant, not zero
        x = np.full(n, rng.integers(-32768, 32768))
    elif kind == 5:  # loud noise, clipping
        x = rng.normal(0, 30000, n)
    else:
        x = rng.integers(-32768, 32768, n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def random_events(rng: np.random.Generator, config, n_inferences: int, *, feedback_rate: float = 0.2, sensor_rate: float = 0.05, reset_rate: float = 0.0005):
    """An event script (see twin.run_events) of n_inferences inferences in segments of
    realistic, full-range, constant, alternating and rail inputs, with label feedback
    (error rate varying by segment), raw PCM blocks of every kind (silence, clipping, DC,
    stuck, noise; 1..65536 samples) and occasional resets. Returns (events, summaries,
    probs, pcm)."""
    summaries, probs, events, pcm, pcm_len = [], [], [], [], 0
    row = 0
    while row < n_inferences:
        n = int(min(n_inferences - row, rng.integers(20, 400)))
        summaries.append(_segment_summaries(rng, int(rng.integers(0, 6)), n, config))
        probs.append(_segment_probs(rng, int(rng.integers(0, 5)), n, config.n_classes))
        error_rate = rng.choice([0.02, 0.1, 0.5, 1.0])
        for i in range(n):
            events.append((0, row + i, 0))
            if rng.random() < feedback_rate:
                truth = int(rng.integers(0, config.n_classes))
                guess = truth if rng.random() > error_rate else int(rng.integers(0, config.n_classes))
                events.append((1, guess, truth))
            if rng.random() < sensor_rate:
                length = int(rng.choice([1, 2, 160, 320, 1000, 4096, rng.integers(1, 5000)]))
                if rng.random() < 0.002:
                    length = 65536
                pcm.append(_sensor_block(rng, length))
                events.append((2, pcm_len, length))
                pcm_len += length
            if rng.random() < reset_rate:
                events.append((3, 0, 0))
        row += n
    pcm_all = np.concatenate(pcm) if pcm else np.zeros(1, np.int16)
    return np.array(events, dtype=np.int64), np.concatenate(summaries), np.concatenate(probs), pcm_all
