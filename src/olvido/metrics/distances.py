"""Distances between an evaluated model and its retrained reference on the forget set (Deep Regression
Unlearning's measures): the Wasserstein distance between the two prediction distributions and the mean
absolute per-sample prediction difference, both in years (0 = identical)."""

from __future__ import annotations

import numpy as np
from scipy.stats import wasserstein_distance

from olvido.metrics.thesis import as_samples


def prediction_wasserstein(model_pred, retrained_pred) -> float:
    """1-D Wasserstein (earth mover's) distance between the two sets of predictions."""
    model_pred = as_samples("model_pred", model_pred)
    retrained_pred = as_samples("retrained_pred", retrained_pred)
    return float(wasserstein_distance(model_pred, retrained_pred))


def mean_prediction_difference(model_pred, retrained_pred) -> float:
    """Mean over samples of ``|model(x) - retrained(x)|`` (paired: same samples, same order)."""
    model_pred = as_samples("model_pred", model_pred)
    return float(np.abs(model_pred - as_samples("retrained_pred", retrained_pred, len(model_pred))).mean())
