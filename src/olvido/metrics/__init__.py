"""Metrics: pure functions over per-sample arrays."""

from olvido.metrics.thesis import (
    absolute_errors,
    f_score,
    forgetting,
    forgetting_per_sample,
    mean_absolute_error,
    utility,
)

__all__ = ["absolute_errors", "f_score", "forgetting", "forgetting_per_sample", "mean_absolute_error", "utility"]
