"""Metrics: pure functions over per-sample arrays (and, for the NeurIPS score, over [K, n] arrays)."""

from olvido.metrics.distances import mean_prediction_difference, prediction_wasserstein, retraining_gaps
from olvido.metrics.epsilon import final_score, forget_score
from olvido.metrics.mia import (
    attack_features,
    leave_one_out_attack,
    likelihood_ratio_scores,
    population_attack,
    score_attack,
)
from olvido.metrics.thesis import (
    absolute_errors,
    f_score,
    forgetting,
    forgetting_per_sample,
    mean_absolute_error,
    utility,
)

__all__ = [
    "absolute_errors",
    "attack_features",
    "f_score",
    "final_score",
    "forget_score",
    "forgetting",
    "forgetting_per_sample",
    "leave_one_out_attack",
    "likelihood_ratio_scores",
    "mean_absolute_error",
    "mean_prediction_difference",
    "population_attack",
    "prediction_wasserstein",
    "retraining_gaps",
    "score_attack",
    "utility",
]
