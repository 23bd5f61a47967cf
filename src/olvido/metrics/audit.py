"""Oracle-free checks of a deletion: do the deleted faces now look like unseen faces of the same ages?

A model that never trained on a face errs on it as on any unseen face of that age. Without retraining, the
deleted faces' errors can be compared with the errors on held-out faces (the test split) of the same ages:

- ``same_age_mae``: the MAE that unseen faces with the deleted faces' ages get (for each deleted face, the
  mean error over the unseen faces of its age, averaged over the deleted faces): the yardstick for the
  deleted faces' own MAE;
- ``same_age_membership``: a loss-threshold membership attack (Yeom et al., CSF 2018) stratified by age:
  the probability that the model fits a deleted face better than an unseen face of the same age (an AUC:
  0.5 indistinguishable, 1 remembered, below 0.5 conspicuously forgotten), with a two-sided permutation
  p-value (under "the deleted faces look unseen", each deleted face's error is exchangeable with those of
  the unseen faces of its age). Valid for a single deleted face; its power grows with their number;
- ``membership_finding``: the plain reading of that test at a significance level.

"Same age" is the exact age when at least ``min_pool`` unseen faces have it, else the narrowest band
``age +- w`` years that holds ``min_pool`` of them.
"""

from __future__ import annotations

import numpy as np

from olvido.metrics.thesis import as_samples

FINDINGS = ("remembers", "like_unseen", "conspicuous")


def _pools(deleted_ages: np.ndarray, unseen_ages: np.ndarray, min_pool: int) -> dict[float, np.ndarray]:
    """For each distinct deleted age, the indices of the unseen faces it is compared with."""
    if min_pool < 1:
        raise ValueError(f"min_pool {min_pool}: expected at least 1")
    pools = {}
    for age in np.unique(deleted_ages):
        distance = np.abs(unseen_ages - age)
        widths = np.sort(np.unique(distance))
        # the narrowest band holding min_pool faces (or every unseen face, when there are fewer)
        enough = np.searchsorted(np.sort(distance), widths, side="right") >= min(min_pool, len(unseen_ages))
        pools[float(age)] = np.flatnonzero(distance <= widths[np.argmax(enough)])
    return pools


def _validated(deleted_ages, unseen_ages, unseen_errors, deleted_errors=None):
    deleted_ages = as_samples("deleted_ages", deleted_ages)
    unseen_ages = as_samples("unseen_ages", unseen_ages)
    unseen_errors = as_samples("unseen_errors", unseen_errors, len(unseen_ages))
    if (unseen_errors < 0).any():
        raise ValueError("unseen_errors: expected absolute errors (>= 0)")
    if deleted_errors is not None:
        deleted_errors = as_samples("deleted_errors", deleted_errors, len(deleted_ages))
        if (deleted_errors < 0).any():
            raise ValueError("deleted_errors: expected absolute errors (>= 0)")
    return deleted_ages, unseen_ages, unseen_errors, deleted_errors


def same_age_mae(deleted_ages, unseen_ages, unseen_errors, min_pool: int = 20) -> float:
    """Expected MAE of unseen faces with the deleted faces' ages (module docstring)."""
    deleted_ages, unseen_ages, unseen_errors, _ = _validated(deleted_ages, unseen_ages, unseen_errors)
    pools = _pools(deleted_ages, unseen_ages, min_pool)
    return float(np.mean([unseen_errors[pools[float(age)]].mean() for age in deleted_ages]))


def _better_fit_share(value: np.ndarray, others: np.ndarray) -> np.ndarray:
    """For each entry of ``value``: share of ``others`` with a larger error (ties count half)."""
    ordered = np.sort(others)
    larger = len(ordered) - np.searchsorted(ordered, value, side="right")
    ties = np.searchsorted(ordered, value, side="right") - np.searchsorted(ordered, value, side="left")
    return (larger + 0.5 * ties) / len(ordered)


def same_age_membership(
    deleted_ages,
    deleted_errors,
    unseen_ages,
    unseen_errors,
    min_pool: int = 20,
    resamples: int = 10000,
    seed: int = 0,
) -> dict:
    """Age-stratified loss-threshold attack: ``auc`` (probability that a deleted face is fitted better than
    an unseen face of its age; 0.5 = indistinguishable) and a two-sided permutation ``p_value``.

    Returns ``auc``, ``p_value``, ``n_deleted`` and ``n_unseen`` (the unseen faces compared with)."""
    deleted_ages, unseen_ages, unseen_errors, deleted_errors = _validated(
        deleted_ages, unseen_ages, unseen_errors, deleted_errors
    )
    if resamples < 100:
        raise ValueError(f"resamples {resamples}: expected at least 100")
    pools = _pools(deleted_ages, unseen_ages, min_pool)
    rng = np.random.default_rng(seed)
    observed = np.empty(len(deleted_ages))
    null = np.zeros(resamples)
    for index, (age, error) in enumerate(zip(deleted_ages, deleted_errors)):
        others = unseen_errors[pools[float(age)]]
        observed[index] = _better_fit_share(np.array([error]), others)[0]
        # under the null the deleted face is any member of {it} + its pool; each one's share against the rest
        candidates = np.append(others, error)
        null += _shares_against_rest(candidates)[rng.integers(0, len(candidates), size=resamples)]
    null /= len(deleted_ages)
    auc = float(observed.mean())
    extreme = np.abs(null - 0.5) >= abs(auc - 0.5) - 1e-12
    return {
        "auc": auc,
        "p_value": float((1 + extreme.sum()) / (resamples + 1)),
        "n_deleted": len(deleted_ages),
        "n_unseen": len(np.unique(np.concatenate(list(pools.values())))),
    }


def _shares_against_rest(values: np.ndarray) -> np.ndarray:
    """For each entry, the share of the OTHER entries with a larger value (ties count half)."""
    ordered = np.sort(values)
    larger = len(ordered) - np.searchsorted(ordered, values, side="right")
    ties = np.searchsorted(ordered, values, side="right") - np.searchsorted(ordered, values, side="left") - 1
    return (larger + 0.5 * ties) / (len(values) - 1)


def membership_finding(auc: float, p_value: float, level: float = 0.05) -> str:
    """``remembers`` (deleted faces fitted better than unseen ones, significant at ``level``),
    ``conspicuous`` (fitted significantly worse: the deletion itself shows) or ``like_unseen``."""
    if not 0 < level < 1:
        raise ValueError(f"level {level}: expected a significance level between 0 and 1")
    if p_value < level:
        return "remembers" if auc > 0.5 else "conspicuous"
    return "like_unseen"
