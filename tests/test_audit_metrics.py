"""The oracle-free deletion checks (olvido.metrics.audit): hand-computed cases, an independent AUC, the test's
calibration under the null and its power on planted canaries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from olvido.metrics.audit import membership_finding, same_age_mae, same_age_membership


def test_same_age_mae_by_hand():
    unseen_ages = [20, 20, 30, 30, 30]
    unseen_errors = [1.0, 3.0, 4.0, 5.0, 6.0]
    # a 20-year-old: (1 + 3) / 2 = 2; a 30-year-old: 5; mean over deleted faces (20, 30, 30) = (2 + 5 + 5) / 3
    assert same_age_mae([20, 30, 30], unseen_ages, unseen_errors, min_pool=2) == pytest.approx(4.0)


def test_the_age_band_widens_until_it_holds_enough_unseen_faces():
    unseen_ages = [20, 22, 23, 40]
    unseen_errors = [1.0, 2.0, 3.0, 100.0]
    # age 21 with min_pool 3: +-1 holds 20 and 22, +-2 adds 23 -> (1 + 2 + 3) / 3; the 40-year-old stays out
    assert same_age_mae([21], unseen_ages, unseen_errors, min_pool=3) == pytest.approx(2.0)
    # more than exist: every unseen face
    assert same_age_mae([21], unseen_ages, unseen_errors, min_pool=10) == pytest.approx(26.5)


def test_auc_by_hand_and_against_sklearn_in_one_stratum():
    # one deleted face with error 2 among unseen errors 1, 2, 3, 4: larger 2, tie 1 -> (2 + 0.5) / 4
    result = same_age_membership([30], [2.0], [30] * 4, [1.0, 2.0, 3.0, 4.0], min_pool=1, resamples=100)
    assert result["auc"] == pytest.approx(0.625)
    rng = np.random.default_rng(3)
    deleted, unseen = np.abs(rng.normal(0, 4, 30)).round(1), np.abs(rng.normal(0, 5, 90)).round(1)
    ours = same_age_membership([35] * 30, deleted, [35] * 90, unseen, resamples=200)["auc"]
    labels = np.r_[np.ones(30), np.zeros(90)]
    assert ours == pytest.approx(roc_auc_score(labels, -np.r_[deleted, unseen]))  # a better fit = a member


def test_the_p_value_is_calibrated_when_deleted_faces_are_unseen_ones():
    rng = np.random.default_rng(0)
    ages = rng.integers(20, 61, 400).astype(float)
    rejections = []
    for repeat in range(120):
        errors = np.abs(rng.normal(0, 5, 400))  # the "deleted" faces are 25 of these unseen-like faces
        result = same_age_membership(ages[:25], errors[:25], ages[25:], errors[25:], resamples=500, seed=repeat)
        rejections.append(result["p_value"] < 0.05)
    assert 0.01 <= np.mean(rejections) <= 0.11


@pytest.mark.parametrize("scale, finding", [(0.3, "remembers"), (3.0, "conspicuous"), (1.0, "like_unseen")])
def test_planted_canaries_are_found(scale, finding):
    rng = np.random.default_rng(1)
    ages = rng.integers(20, 61, 600).astype(float)
    errors = np.abs(rng.normal(0, 5, 600))
    deleted = errors[:40] * scale  # memorised (smaller errors), pushed away (larger) or untouched
    result = same_age_membership(ages[:40], deleted, ages[40:], errors[40:], seed=0)
    assert membership_finding(result["auc"], result["p_value"]) == finding
    assert result["n_deleted"] == 40


def test_one_deleted_face_can_be_tested():
    ages, errors = np.full(199, 30.0), np.linspace(1, 10, 199)
    extreme = same_age_membership([30.0], [0.01], ages, errors, seed=0)
    assert extreme["auc"] == 1.0 and extreme["p_value"] < 0.05
    typical = same_age_membership([30.0], [5.5], ages, errors, seed=0)
    assert typical["p_value"] > 0.5


@pytest.mark.parametrize(
    "arguments, message",
    [
        (([30, 31], [1.0], [30, 31], [1.0, 2.0]), "deleted_errors: expected 2 samples"),
        (([30], [1.0], [30, 31], [1.0]), "unseen_errors: expected 2 samples"),
        (([30], [-1.0], [30], [1.0]), "absolute errors"),
        (([30], [np.nan], [30], [1.0]), "NaN"),
        (([[30, 31]], [1.0], [30], [1.0]), "one value per sample"),
    ],
)
def test_bad_inputs_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        same_age_membership(*arguments)


def test_finding_needs_a_level_between_zero_and_one():
    with pytest.raises(ValueError, match="significance level"):
        membership_finding(0.9, 0.01, level=5)


def test_the_verdict_reads_the_checks_plainly():
    from olvido.experiments.audit import conclusion

    def checks(**findings) -> dict:
        return {name: {"finding": finding, "n_deleted": 30} for name, finding in findings.items()}

    assert conclusion({"checks": checks(before="remembers", after="like_unseen")})[0] == "forgotten"
    assert conclusion({"checks": checks(before="remembers", after="remembers")})[0] == "not forgotten"
    assert conclusion({"checks": checks(before="remembers", after="conspicuous")})[0] == "conspicuous"
    verdict, text = conclusion({"checks": checks(before="like_unseen", after="like_unseen")})
    assert verdict == "already forgotten" and "(--method none) was enough" in text
    against = {"before": {"F": 0.99, "wasserstein": 0.2}, "after": {"F": 0.8, "wasserstein": 1.9}}
    result = {"checks": checks(before="like_unseen", after="like_unseen", retrained="like_unseen")}
    verdict, text = conclusion({**result, "against_retrained": against})
    assert verdict == "already forgotten (agrees with retraining)"
    assert "further from the retrained reference (F 0.990 -> 0.800, Wasserstein distance 0.20 -> 1.90" in text
    result = {"checks": checks(before="remembers", after="like_unseen", retrained="remembers")}
    verdict, text = conclusion({**result, "against_retrained": {"after": against["after"]}})
    assert verdict == "forgotten (disagrees with retraining)" and "DISAGREES" in text and "further" not in text
