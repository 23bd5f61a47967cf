"""The NeurIPS 2023 Machine Unlearning Challenge's forget score, ported from classification to any scalar.

For every forget example, K unlearned models and K retrained models each give a scalar score (the
challenge used the logit-scaled confidence; for regression olvido uses the prediction itself, or
``-|error|``). An attacker who must tell the two distributions apart with a threshold test is bounded by
an (epsilon, delta)-DP-style epsilon estimated from its best false positive / false negative rates; that
epsilon earns points in buckets, and the forget score is the mean over examples (1 = indistinguishable
from retraining for every example).

Ported from the official scoring algorithm (google-deepmind/unlearning_evaluation, ``metric.py``):
- per example the *positive* distribution is the one with the larger median (ties: the unlearned one);
- if min(range) / max(range) of the two distributions is below 1%: epsilon = 50 (the cap);
- single-threshold rule: ``ceil((max - min) * 100)`` thresholds from the joint min to the joint max
  (``torch.linspace``); positive when ``score >= threshold``;
- two-sided rule: the peakier distribution (smaller range; on equal ranges the negative one) is the
  positive; with ``w`` its range, right thresholds ``linspace(min + w - 2, max + 2, ceil(span * 100))``
  and, for each right threshold ``r``, 400 left thresholds ``linspace(r - w - 2, r - w + 2, 400)``;
  positive when ``left <= score <= right``;
- per threshold, rates are means over the K models in float32: epsilon = inf where FPR = FNR = 0,
  the threshold is discarded where exactly one of them is 0, otherwise
  ``max(log(1 - delta - FPR) - log FNR, log(1 - delta - FNR) - log FPR)`` ignoring a NaN term (the log of
  a negative number when a rate is 1; a threshold whose two terms are both NaN is dropped), clipped at
  0; the example's
  epsilon is the max over kept thresholds, clipped to [0, 50];
- buckets of width 0.5 from 0 while the bucket's end <= ``ceil(ln(K - 1))``, worth 1, 1/2, 1/4, ...;
  beyond the last bucket an example earns 0.

One deliberate difference: where no threshold survives (e.g. two identical constant distributions) the
official code fails an assertion; here such an example gets epsilon 0 (nothing distinguishes them).
Rates are counted with sorted arrays and binary search instead of materialising every (model,
threshold) pair, which gives the same numbers in a fraction of the memory and time.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
BUCKET_SIZE = 0.5


def _counts_at_least(sorted_scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How many scores are >= each threshold."""
    return len(sorted_scores) - np.searchsorted(sorted_scores, thresholds, side="left")


def _counts_between(sorted_scores: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """How many scores s satisfy left <= s <= right, for each (left, right) pair."""
    inside = np.searchsorted(sorted_scores, right, side="right") - np.searchsorted(sorted_scores, left, side="left")
    return np.maximum(inside, 0)


def _single_threshold_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    low = min(pos[0], neg[0])
    high = max(pos[-1], neg[-1])
    count = int(math.ceil((high - low) * THRESHOLDS_PER_UNIT))
    thresholds = torch.linspace(float(low), float(high), count, dtype=torch.float64).numpy()
    return _counts_at_least(pos, thresholds), _counts_at_least(neg, thresholds)


def _two_sided_counts(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
    width = neg_range if pos_range > neg_range else pos_range
    if pos_range >= neg_range:  # the peakier distribution plays the positive
        pos, neg = neg, pos
    low = pos[0] + width - BUFFER
    high = pos[-1] + BUFFER
    right = np.linspace(low, high, num=int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    n_left = int(np.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT))
    left = np.linspace(right - width - BUFFER, right - width + BUFFER, num=n_left, axis=1).reshape(-1)
    right = np.repeat(right, n_left)
    return _counts_between(pos, left, right), _counts_between(neg, left, right)


def _epsilon_from_counts(positives: np.ndarray, negatives: np.ndarray, k_pos: int, k_neg: int, delta: float) -> float:
    """The best epsilon over thresholds; counts are how many positive/negative scores were called positive."""
    f32 = np.float32
    tpr = positives.astype(f32) / f32(k_pos)
    fnr = (k_pos - positives).astype(f32) / f32(k_pos)
    fpr = negatives.astype(f32) / f32(k_neg)
    tnr = (k_neg - negatives).astype(f32) / f32(k_neg)
    perfect = (fpr + fnr == 0) & (tpr + tnr == 2)
    if perfect.any():
        return math.inf
    keep = fpr * fnr != 0
    if not keep.any():
        return 0.0
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(divide="ignore", invalid="ignore"):  # log of 1 - delta - 1 < 0 is NaN, as officially
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = eps[~np.isnan(eps)]  # a threshold where both terms are NaN is dropped, as officially
    return float(np.clip(eps, 0, None).max()) if len(eps) else 0.0


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """Epsilon for one example from its K unlearned and K retrained scores (1-D arrays)."""
    unlearned = np.sort(np.asarray(unlearned, dtype=np.float64))
    retrained = np.sort(np.asarray(retrained, dtype=np.float64))
    if np.median(retrained) > np.median(unlearned):
        pos, neg = retrained, unlearned
    else:
        pos, neg = unlearned, retrained
    pos_range, neg_range = pos[-1] - pos[0], neg[-1] - neg[0]
    largest, smallest = max(pos_range, neg_range), min(pos_range, neg_range)
    if largest > 0 and smallest / largest < 0.01:
        return EPSILON_CAP  # one distribution is (almost) a point: treat as fully distinguishable
    single_pos, single_neg = _single_threshold_counts(pos, neg)
    eps_single = _epsilon_from_counts(single_pos, single_neg, len(pos), len(neg), delta) if len(single_pos) else 0.0
    if eps_single >= EPSILON_CAP:  # perfectly separated already: the two-sided rule cannot change the capped result
        return EPSILON_CAP
    if pos_range >= neg_range:  # two-sided rule: the peakier distribution is its positive
        k_pos, k_neg = len(neg), len(pos)
    else:
        k_pos, k_neg = len(pos), len(neg)
    double_pos, double_neg = _two_sided_counts(pos, neg)
    eps_double = _epsilon_from_counts(double_pos, double_neg, k_pos, k_neg, delta)
    return float(min(max(eps_single, eps_double, 0.0), EPSILON_CAP))


def bucket_points(num_models: int) -> list[tuple[float, float]]:
    """``(bucket start, points)`` pairs: width 0.5 from 0 while the end <= ceil(ln(K - 1))."""
    if num_models < 3:
        raise ValueError(f"need at least 3 models per distribution, got {num_models}")
    max_epsilon = math.ceil(math.log(num_models - 1))
    buckets, start, points = [], 0.0, 1.0
    while start + BUCKET_SIZE <= max_epsilon:
        buckets.append((start, points))
        points /= 2
        start += BUCKET_SIZE
    return buckets


def points_for(epsilon: float, buckets: list[tuple[float, float]]) -> float:
    for start, points in buckets:
        if epsilon < start + BUCKET_SIZE:
            return points
    return 0.0


def forget_score(unlearned, retrained, delta: float = DELTA) -> tuple[float, np.ndarray]:
    """The challenge's forget score in [0, 1] and the per-example epsilons.

    ``unlearned`` and ``retrained``: arrays of shape [K, n], the score of each of n forget examples under
    each of K unlearned / K retrained models.
    """
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    if unlearned.ndim != 2 or unlearned.shape != retrained.shape:
        raise ValueError(f"expected two [K, n] arrays of the same shape, got {unlearned.shape} and {retrained.shape}")
    if not (np.isfinite(unlearned).all() and np.isfinite(retrained).all()):
        raise ValueError("scores contain NaN or infinite values")
    buckets = bucket_points(unlearned.shape[0])
    epsilons = np.array([example_epsilon(unlearned[:, i], retrained[:, i], delta) for i in range(unlearned.shape[1])])
    score = float(np.mean([points_for(e, buckets) for e in epsilons])) if len(epsilons) else float("nan")
    return score, epsilons


def example_points(unlearned, retrained, delta: float = DELTA) -> np.ndarray:
    """Each forget example's points (the forget score is their mean), from two [K, n] score arrays."""
    _, epsilons = forget_score(unlearned, retrained, delta)
    buckets = bucket_points(np.asarray(unlearned).shape[0])
    return np.array([points_for(e, buckets) for e in epsilons])


def calibrated_forget_score(
    points: np.ndarray,
    reference_points: np.ndarray,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The forget score divided by the retrained-versus-retrained score F_rr, with percentile bootstrap
    intervals over the forget examples.

    ``points``: each example's points for the unlearned set against the reference retrained set;
    ``reference_points``: the same for a second, independent set of retrained models against that
    reference (``example_points``). Two sets drawn from one distribution score about 0.2, not 1, at every
    K (METHODS.md section 4.2), so the raw score alone says little: the calibrated score is near 1 for a
    method indistinguishable from retraining and near 0 for one always told apart. The bootstrap is
    paired (one resample of the examples serves both scores), as both are means over the same examples.
    Returns raw, f_rr and calibrated with ``_low`` / ``_high`` bounds; calibrated is NaN when F_rr is 0."""
    points = np.asarray(points, dtype=np.float64)
    reference_points = np.asarray(reference_points, dtype=np.float64)
    if points.ndim != 1 or points.shape != reference_points.shape or len(points) == 0:
        raise ValueError(
            f"expected two 1-D per-example point arrays of one non-zero length, got {points.shape} and "
            f"{reference_points.shape}"
        )
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r}: expected a number strictly between 0 and 1")
    if resamples < 1:
        raise ValueError(f"resamples {resamples!r}: expected at least 1")

    def ratio(raw, reference):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(reference > 0, raw / np.where(reference > 0, reference, 1), np.nan)

    rng = np.random.default_rng(seed)
    chosen = rng.integers(0, len(points), size=(resamples, len(points)))
    raw_draws, reference_draws = points[chosen].mean(axis=1), reference_points[chosen].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    row = {}
    for name, value, draws in (
        ("raw", points.mean(), raw_draws),
        ("f_rr", reference_points.mean(), reference_draws),
        ("calibrated", float(ratio(np.array(points.mean()), np.array(reference_points.mean()))), None),
    ):
        if draws is None:
            draws = ratio(raw_draws, reference_draws)
            draws = draws[np.isfinite(draws)]
        row[name] = float(value)
        low, high = np.percentile(draws, [tail, 100 - tail]) if len(draws) else (np.nan, np.nan)
        row[f"{name}_low"], row[f"{name}_high"] = float(low), float(high)
    return row


def spread_ratio(unlearned, retrained) -> float:
    """Median over forget examples of sd(unlearned runs) / sd(retrained runs), from two [K, n] arrays
    (sample standard deviations over the K models). Below 1: the unlearned runs agree more than
    retraining's, which the forget score punishes harder than a bias (METHODS.md section 4.2); 0 for a
    deterministic method. Examples on which every retrained model agrees are left out (NaN if all are)."""
    unlearned = np.asarray(unlearned, dtype=np.float64)
    retrained = np.asarray(retrained, dtype=np.float64)
    if unlearned.ndim != 2 or retrained.ndim != 2 or unlearned.shape[1] != retrained.shape[1]:
        raise ValueError(f"expected two [K, n] arrays with the same n, got {unlearned.shape} and {retrained.shape}")
    if min(unlearned.shape[0], retrained.shape[0]) < 2:
        raise ValueError(
            f"expected at least 2 models per side for a spread, got {unlearned.shape[0]} and {retrained.shape[0]}"
        )
    spread_u, spread_r = unlearned.std(axis=0, ddof=1), retrained.std(axis=0, ddof=1)
    kept = spread_r > 0
    return float(np.median(spread_u[kept] / spread_r[kept])) if kept.any() else float("nan")


def final_score(
    forget: float, retain_mae_unlearned, retain_mae_retrained, test_mae_unlearned, test_mae_retrained
) -> float:
    """Forget score x retain-utility ratio x test-utility ratio, with MAE ratios (retrained / unlearned)
    standing in for the challenge's accuracy ratios (unlearned / retrained): both are < 1 when the
    unlearned models are worse than retraining."""
    retain_ratio = float(np.mean(retain_mae_retrained) / np.mean(retain_mae_unlearned))
    test_ratio = float(np.mean(test_mae_retrained) / np.mean(test_mae_unlearned))
    return forget * retain_ratio * test_ratio
