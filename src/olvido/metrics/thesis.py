"""The thesis's metric (section 4.3), as small pure functions over per-sample arrays.

All errors are in years and every comparison is against the retrained model M_R:

- ``utility = MAE(M_R on test) / MAE(model on test)``; above 1 the model is more accurate than retraining;
- ``forgetting = mean_i exp(-| r_i - e_i | / alpha)`` over the forget set, with ``r_i = |y_i - M_R(x_i)|``
  and ``e_i = |y_i - model(x_i)|``; 1 when the model errs exactly like M_R on every forgotten sample;
- ``F = utility x forgetting``.

Inputs are validated like scikit-learn's metrics: 1-D (or (n, 1) column) arrays of equal length and finite
values. A column is flattened, never broadcast: the thesis's own code subtracted a (n, 1) prediction array
from (n,) labels, which silently produced an n x n matrix and averaged all pairs.
"""

from __future__ import annotations

import numpy as np


def as_samples(name: str, values, n: int | None = None) -> np.ndarray:
    """``values`` as a float64 array of shape (n,); (n, 1) columns are accepted and flattened."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name}: expected one value per sample, shape (n,) or (n, 1), got {array.shape}")
    if n is not None and len(array) != n:
        raise ValueError(f"{name}: expected {n} samples, got {len(array)}")
    if len(array) == 0:
        raise ValueError(f"{name}: no samples")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return array


def absolute_errors(y_true, y_pred) -> np.ndarray:
    """Per-sample ``|y - prediction|``, shape (n,)."""
    y_true = as_samples("y_true", y_true)
    return np.abs(y_true - as_samples("y_pred", y_pred, len(y_true)))


def mean_absolute_error(y_true, y_pred) -> float:
    return float(absolute_errors(y_true, y_pred).mean())


def utility(retrained_test_mae: float, model_test_mae: float) -> float:
    """``MAE(M_R, test) / MAE(model, test)``."""
    if not (retrained_test_mae > 0 and model_test_mae > 0):
        raise ValueError(f"utility needs positive MAEs, got {retrained_test_mae} and {model_test_mae}")
    return float(retrained_test_mae / model_test_mae)


def forgetting_per_sample(y_true, model_pred, retrained_pred, alpha: float = 15.0) -> np.ndarray:
    """``exp(-| |y - M_R(x)| - |y - model(x)| | / alpha)`` for every forget sample, shape (n,)."""
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    y_true = as_samples("y_true", y_true)
    model_errors = np.abs(y_true - as_samples("model_pred", model_pred, len(y_true)))
    retrained_errors = np.abs(y_true - as_samples("retrained_pred", retrained_pred, len(y_true)))
    return np.exp(-np.abs(retrained_errors - model_errors) / alpha)


def forgetting(y_true, model_pred, retrained_pred, alpha: float = 15.0) -> float:
    """The thesis's Forgetting: mean of ``forgetting_per_sample`` over the forget set."""
    return float(forgetting_per_sample(y_true, model_pred, retrained_pred, alpha).mean())


def f_score(utility_value: float, forgetting_value: float) -> float:
    """``F = Utility x Forgetting``."""
    return float(utility_value * forgetting_value)
