"""The NeurIPS 2023 forget score: hand-built distributions, every edge case, and a brute-force oracle."""

import math

import numpy as np
import pytest
import torch

from olvido.metrics import forget_score as exported_forget_score
from olvido.metrics.epsilon import (
    DELTA,
    EPSILON_CAP,
    bucket_points,
    calibrated_forget_score,
    example_epsilon,
    example_points,
    final_score,
    forget_score,
    points_for,
    spread_ratio,
)


def brute_force_epsilon(unlearned, retrained, delta=DELTA):
    """A literal, slow transcription of the official algorithm (dense model x threshold matrices)."""
    unlearned, retrained = np.asarray(unlearned, float), np.asarray(retrained, float)
    if np.median(retrained) > np.median(unlearned):
        pos, neg = retrained, unlearned
    else:
        pos, neg = unlearned, retrained
    pos_diff, neg_diff = pos.max() - pos.min(), neg.max() - neg.min()
    largest = pos_diff if pos_diff > neg_diff else neg_diff
    smallest = neg_diff if pos_diff > neg_diff else pos_diff
    if largest > 0 and smallest / largest < 0.01:
        return EPSILON_CAP
    # two-sided: dense [thresholds, models] comparisons
    p, n = (neg, pos) if pos_diff >= neg_diff else (pos, neg)
    low, high = p.min() + smallest - 2.0, p.max() + 2.0
    rights = np.linspace(low, high, num=int(np.ceil((high - low) * 100)))
    lefts = np.concatenate([np.linspace(r - smallest - 2.0, r - smallest + 2.0, num=400) for r in rights])
    rights = np.repeat(rights, 400)
    pp_pos = ((lefts[:, None] <= p[None]) & (p[None] <= rights[:, None])).mean(axis=1)
    pp_neg = ((lefts[:, None] <= n[None]) & (n[None] <= rights[:, None])).mean(axis=1)
    rates = list(zip(pp_pos, 1 - pp_pos, pp_neg, 1 - pp_neg))
    # single
    everything = np.concatenate([pos, neg])
    count = int(math.ceil((everything.max() - everything.min()) * 100))
    thresholds = torch.linspace(float(everything.min()), float(everything.max()), count, dtype=torch.float64).numpy()
    above_pos = (pos[None] >= thresholds[:, None]).mean(axis=1)
    above_neg = (neg[None] >= thresholds[:, None]).mean(axis=1)
    rates += list(zip(above_pos, 1 - above_pos, above_neg, 1 - above_neg))
    best = None
    rates = np.float32(rates)
    tpr, fnr, fpr, tnr = rates.T
    if ((fpr + fnr == 0) & (tpr + tnr == 2)).any():
        return EPSILON_CAP
    rates = np.unique(rates[fpr * fnr != 0], axis=0)  # repeated rows give the same epsilon: the max is unchanged
    for tpr, fnr, fpr, tnr in rates:
        if fpr + fnr == 0 and tpr + tnr == 2:
            return EPSILON_CAP
        if fpr * fnr == 0:
            continue
        with np.errstate(invalid="ignore"):
            terms = [
                t
                for t in (np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
                if not np.isnan(t)
            ]
        if not terms:
            continue
        eps = max(max(terms), 0.0)
        best = eps if best is None else max(best, eps)
    return 0.0 if best is None else min(float(best), EPSILON_CAP)


def test_identical_distributions_are_indistinguishable():
    scores = np.linspace(20, 30, 32)
    assert example_epsilon(scores, scores.copy()) == 0.0
    score, eps = forget_score(np.tile(scores[:, None], (1, 3)), np.tile(scores[:, None], (1, 3)))
    assert score == 1.0 and (eps == 0).all()


def test_perfect_separation_gives_the_cap_and_no_points():
    unlearned = np.linspace(0, 1, 16)
    retrained = np.linspace(10, 11, 16)
    assert example_epsilon(unlearned, retrained) == EPSILON_CAP
    score, _ = forget_score(unlearned[:, None], retrained[:, None])
    assert score == 0.0


def test_a_point_like_distribution_gets_the_cap():
    spread = np.linspace(0, 10, 16)
    peaky = 5 + np.linspace(0, 0.05, 16)  # range ratio 0.005 < 1%
    assert example_epsilon(peaky, spread) == EPSILON_CAP
    assert example_epsilon(spread, peaky) == EPSILON_CAP


def test_hand_computed_partial_overlap():
    """Unlearned 0..9, retrained 5..14: the best rule misses 1 of 10 retrained and admits 4 of 10
    unlearned (or the mirror image), so epsilon = log(1 - delta - 0.4) - log(0.1)."""
    unlearned = np.arange(10.0)
    retrained = np.arange(5.0, 15.0)
    expected = float(np.log(np.float32(1 - DELTA - np.float32(0.4))) - np.log(np.float32(0.1)))
    assert example_epsilon(unlearned, retrained) == pytest.approx(expected, abs=1e-5)
    assert expected == pytest.approx(1.79175, abs=1e-4)
    buckets = bucket_points(10)  # ceil(ln 9) = 3: buckets up to [2.5, 3)
    assert points_for(expected, buckets) == 0.125


def test_thresholds_where_exactly_one_rate_is_zero_are_discarded():
    # Retrained 1..4, unlearned 0..3 (integers): every threshold that catches all of one side has
    # FPR or FNR = 0; without discarding them epsilon would be infinite-like from log(0).
    eps = example_epsilon(np.arange(4.0), np.arange(1.0, 5.0))
    assert 0 < eps < EPSILON_CAP and math.isfinite(eps)


def test_median_ties_make_the_unlearned_distribution_positive():
    unlearned = np.array([0.0, 5.0, 5.0, 9.0])
    retrained = np.array([1.0, 5.0, 5.0, 6.0])
    assert example_epsilon(unlearned, retrained) == pytest.approx(brute_force_epsilon(unlearned, retrained))


def test_identical_constants_do_not_crash():
    """The official code fails an assertion here (no threshold survives); olvido returns epsilon 0."""
    assert example_epsilon(np.full(8, 3.0), np.full(8, 3.0)) == 0.0
    assert example_epsilon(np.full(8, 3.0), np.full(8, 4.0)) == EPSILON_CAP


@pytest.mark.parametrize("k,count,last", [(512, 14, 2.0**-13), (32, 8, 2.0**-7), (10, 6, 2.0**-5)])
def test_bucket_table(k, count, last):
    buckets = bucket_points(k)
    assert len(buckets) == count
    assert buckets[0] == (0.0, 1.0) and buckets[-1][1] == last
    assert buckets[-1][0] + 0.5 == math.ceil(math.log(k - 1))
    assert points_for(0.49, buckets) == 1.0 and points_for(0.5, buckets) == 0.5
    assert points_for(math.ceil(math.log(k - 1)), buckets) == 0.0


def test_fast_rates_match_the_brute_force_oracle_on_random_ties():
    rng = np.random.default_rng(0)
    for trial in range(40):
        k = int(rng.choice([4, 6, 8]))
        scale = rng.choice([0.1, 1.0, 3.0])
        unlearned = np.round(rng.normal(0, scale, k), 1)
        retrained = np.round(rng.normal(rng.choice([0.0, 0.5, 2.0]), scale, k), 1)
        assert example_epsilon(unlearned, retrained) == pytest.approx(
            brute_force_epsilon(unlearned, retrained), abs=1e-5
        ), trial


def test_forget_score_shapes_and_final_score():
    rng = np.random.default_rng(1)
    retrained = rng.normal(30, 2, (32, 20))
    same = rng.normal(30, 2, (32, 20))
    shifted = rng.normal(36, 2, (32, 20))
    good, eps_good = forget_score(same, retrained)
    bad, eps_bad = forget_score(shifted, retrained)
    # with only 32 models per side, sampling noise alone lets the threshold search find some epsilon
    assert eps_good.shape == (20,) and good > bad + 0.1 and bad < 0.05
    assert eps_bad.mean() > eps_good.mean()
    with pytest.raises(ValueError, match=r"\[K, n\]"):
        forget_score(same[:, :5], retrained)
    with pytest.raises(ValueError, match="at least 3 models"):
        forget_score(same[:2], retrained[:2])
    assert final_score(0.8, [6.0], [5.0], [5.5], [5.5]) == pytest.approx(0.8 * 5 / 6)


def test_512_models_reproduce_the_simulated_ceiling_and_power():
    # METHODS.md section 4.2: two samples of one distribution score about 0.19-0.21 at any K (the
    # ceiling); a one-standard-deviation shift scores about 0.016 at K = 512.
    rng = np.random.default_rng(2)
    same, eps = forget_score(rng.normal(0, 1, (512, 50)), rng.normal(0, 1, (512, 50)))
    shifted, _ = forget_score(rng.normal(1, 1, (512, 50)), rng.normal(0, 1, (512, 50)))
    assert eps.shape == (50,)
    assert 0.15 < same < 0.25
    assert shifted < 0.05


def test_forget_score_is_exported_from_olvido_metrics():
    assert exported_forget_score is forget_score


# -- calibration (issue 11): tests of the tests on synthetic score arrays --------------------------------


def _gaussian_scores(seed: int, k: int = 32, n: int = 300, shift: float = 0.0, spread: float = 1.0):
    """[K, n] scores: example i centred at its own mean (shared by every set), model-to-model sd ``spread``."""
    centres = np.random.default_rng(1234).normal(35, 8, n)
    return centres + shift + spread * np.random.default_rng(seed).normal(size=(k, n))


def _calibrated(unlearned, reference, other):
    return calibrated_forget_score(example_points(unlearned, reference), example_points(other, reference), seed=0)


def test_example_points_average_to_the_forget_score():
    unlearned, retrained = _gaussian_scores(1, n=60), _gaussian_scores(2, n=60)
    points = example_points(unlearned, retrained)
    assert points.shape == (60,) and set(np.unique(points)) <= {1.0, 0.5, 0.25, 0.125, 0.0625, 0.0}
    assert points.mean() == pytest.approx(forget_score(unlearned, retrained)[0])


def test_calibrated_score_by_hand():
    row = calibrated_forget_score(np.array([1.0, 0.5, 0.0, 1.0]), np.full(4, 0.5), resamples=500, seed=3)
    assert row["raw"] == pytest.approx(0.625) and row["f_rr"] == pytest.approx(0.5)
    assert row["calibrated"] == pytest.approx(1.25)
    assert row["f_rr_low"] == row["f_rr_high"] == pytest.approx(0.5)  # every resample of a constant
    assert 0 <= row["raw_low"] < 0.625 < row["raw_high"] <= 1
    assert row["calibrated_low"] == pytest.approx(row["raw_low"] / 0.5)
    assert row == calibrated_forget_score(np.array([1.0, 0.5, 0.0, 1.0]), np.full(4, 0.5), resamples=500, seed=3)


def test_same_distribution_calibrates_near_one():
    reference, other, same = (_gaussian_scores(seed) for seed in (10, 11, 12))
    row = _calibrated(same, reference, other)
    assert 0.12 < row["f_rr"] < 0.3  # the ceiling of two same-distribution sets (METHODS.md 4.2)
    assert row["calibrated_low"] <= 1.0 <= row["calibrated_high"]
    assert 0.75 < row["calibrated"] < 1.33


def test_biased_and_under_spread_sets_calibrate_clearly_lower():
    reference, other = _gaussian_scores(10), _gaussian_scores(11)
    same = _calibrated(_gaussian_scores(12), reference, other)
    biased = _calibrated(_gaussian_scores(13, shift=1.0), reference, other)
    narrow = _calibrated(_gaussian_scores(14, spread=0.5), reference, other)
    for row in (biased, narrow):
        assert row["calibrated_high"] < same["calibrated_low"]
        assert row["calibrated"] < 0.6
    assert spread_ratio(_gaussian_scores(14, spread=0.5), reference) == pytest.approx(0.5, abs=0.08)
    assert spread_ratio(_gaussian_scores(12), reference) == pytest.approx(1.0, abs=0.12)


def test_spread_ratio_by_hand_and_for_a_deterministic_method():
    unlearned = np.array([[0.0, 0.0, 5.0], [2.0, 1.0, 5.0]])  # sds sqrt(2), sqrt(2)/2, 0
    retrained = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]])  # sds sqrt(2)/2, sqrt(2)/2, 0 (left out)
    assert spread_ratio(unlearned, retrained) == pytest.approx(1.5)
    assert spread_ratio(np.tile(np.arange(4.0), (5, 1)), _gaussian_scores(1, k=5, n=4)) == 0.0
    assert math.isnan(spread_ratio(np.ones((3, 2)), np.ones((3, 2))))


@pytest.mark.parametrize(
    "call",
    [
        lambda: calibrated_forget_score(np.ones(3), np.ones(4)),
        lambda: calibrated_forget_score(np.ones((3, 2)), np.ones((3, 2))),
        lambda: calibrated_forget_score(np.ones(3), np.ones(3), confidence=1.0),
        lambda: spread_ratio(np.ones((3, 2)), np.ones((3, 4))),
        lambda: spread_ratio(np.ones((1, 2)), np.ones((3, 2))),
    ],
)
def test_calibration_rejects_bad_shapes_and_options(call):
    with pytest.raises(ValueError, match="expected"):
        call()
