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


TUNING_SETS = ("retain", "forget", "val")


def retraining_gaps(targets: dict, predictions: dict, reference: dict) -> dict[str, float]:
    """The tuning objective (METHODS.md section 5, DeepUnlearn's regression adaptation): how far a model is
    from its retrained reference. For x in retain, forget and val, ``|MAE_x(model) - MAE_x(R)| / MAE_x(R)``;
    with ``W1(forget predictions of model, of R) / MAE_forget(R)`` in place of the membership attack, which
    sits at chance for early-stopped regressors. Each argument maps ``retain``, ``forget`` and ``val`` to
    per-sample arrays (true ages, the model's and R's predictions on the same samples); ``objective`` is
    the mean of the four terms (0: indistinguishable from R on these sets)."""
    missing = [name for name in TUNING_SETS for given in (targets, predictions, reference) if name not in given]
    if missing:
        raise ValueError(f"retraining_gaps: sets {sorted(set(missing))} missing; expected {', '.join(TUNING_SETS)}")
    model_mae, reference_mae = {}, {}
    for name in TUNING_SETS:
        truth = as_samples(f"targets[{name!r}]", targets[name])
        model_mae[name] = np.abs(as_samples(f"predictions[{name!r}]", predictions[name], len(truth)) - truth).mean()
        reference_mae[name] = np.abs(as_samples(f"reference[{name!r}]", reference[name], len(truth)) - truth).mean()
        if not reference_mae[name] > 0:
            raise ValueError(f"retraining_gaps: the reference's {name} MAE is 0; expected a positive error")
    terms = {f"{x}_gap": float(abs(model_mae[x] - reference_mae[x]) / reference_mae[x]) for x in TUNING_SETS}
    distance = prediction_wasserstein(predictions["forget"], reference["forget"])
    terms["forget_wasserstein"] = float(distance / reference_mae["forget"])
    terms["objective"] = float(np.mean(list(terms.values())))
    return terms
