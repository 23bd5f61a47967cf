import math

import numpy as np
import pytest

from olvido.metrics import absolute_errors, f_score, forgetting, forgetting_per_sample, mean_absolute_error, utility

Y = np.array([20.0, 30.0, 40.0])
MODEL = np.array([22.0, 30.0, 35.0])  # errors 2, 0, 5
RETRAINED = np.array([25.0, 27.0, 40.0])  # errors 5, 3, 0


def test_mae_and_errors_by_hand():
    assert absolute_errors(Y, MODEL).tolist() == [2.0, 0.0, 5.0]
    assert mean_absolute_error(Y, MODEL) == pytest.approx(7 / 3)


def test_utility_by_hand():
    assert utility(6.17, 4.81) == pytest.approx(6.17 / 4.81)  # the thesis's M_O: 1.28
    assert utility(5.0, 5.0) == 1.0
    with pytest.raises(ValueError):
        utility(0.0, 5.0)


def test_forgetting_by_hand():
    # |r - e| = |5-2|, |3-0|, |0-5| = 3, 3, 5
    expected = (2 * math.exp(-3 / 15) + math.exp(-5 / 15)) / 3
    assert forgetting(Y, MODEL, RETRAINED, alpha=15) == pytest.approx(expected)
    per_sample = forgetting_per_sample(Y, MODEL, RETRAINED, alpha=5)
    np.testing.assert_allclose(per_sample, [math.exp(-3 / 5), math.exp(-3 / 5), math.exp(-1)])


def test_forgetting_is_one_for_the_retrained_model_itself_and_falls_with_distance():
    assert forgetting(Y, RETRAINED, RETRAINED) == 1.0
    assert forgetting(Y, RETRAINED + 1, RETRAINED, alpha=2) < forgetting(Y, RETRAINED + 1, RETRAINED, alpha=30) < 1


def test_f_score_by_hand():
    assert f_score(1.28, 0.672) == pytest.approx(0.86016)


def test_column_inputs_cannot_produce_the_all_pairs_mean():
    """The thesis's bug: (n, 1) predictions minus (n,) labels broadcast to n x n and averaged all pairs."""
    model = np.array([22.0, 33.0, 35.0])  # errors 2, 3, 5 against RETRAINED's 5, 3, 0: |r - e| = 3, 0, 5
    correct = (math.exp(-3 / 15) + 1 + math.exp(-5 / 15)) / 3  # 0.84509
    column_model, column_retrained = model.reshape(-1, 1), RETRAINED.reshape(-1, 1)
    assert forgetting(Y, model, RETRAINED) == pytest.approx(correct)
    assert forgetting(Y, column_model, column_retrained) == pytest.approx(correct)
    assert forgetting(Y.reshape(-1, 1), column_model, RETRAINED) == pytest.approx(correct)
    assert mean_absolute_error(Y, column_model) == pytest.approx(10 / 3)
    assert np.abs(Y - column_model).shape == (3, 3)  # what the original code averaged
    all_pairs = np.mean(np.exp(-np.abs(np.abs(Y - column_retrained) - np.abs(Y - column_model)) / 15))
    assert all_pairs == pytest.approx(0.77183, abs=1e-5)
    assert abs(all_pairs - correct) > 0.07


@pytest.mark.parametrize(
    "y,pred,message",
    [
        (np.ones(3), np.ones((3, 2)), "shape"),
        (np.ones(3), np.ones(4), "expected 3 samples"),
        (np.ones((1, 3)), np.ones(3), "shape"),
        (np.array([1.0, np.nan]), np.ones(2), "NaN"),
        (np.array([]), np.array([]), "no samples"),
    ],
)
def test_bad_shapes_and_values_are_rejected(y, pred, message):
    with pytest.raises(ValueError, match=message):
        mean_absolute_error(y, pred)
    with pytest.raises(ValueError, match=message):
        forgetting(y, pred, np.ones(len(np.ravel(y))) if message != "no samples" else pred)


def test_alpha_must_be_positive():
    with pytest.raises(ValueError, match="alpha"):
        forgetting(Y, MODEL, RETRAINED, alpha=0)
