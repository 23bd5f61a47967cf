"""Membership inference attacks (MIA) for regression.

Population attacks learn, from per-sample features of one model, to tell members (the forget set, which
the original model trained on) from non-members (held-out test samples drawn like them). An unlearned
model should leave the attacker no better off than against the retrained model, which never saw the
forget set: report both and the gap.

- ``population_attack(..., attacker="logistic")``: logistic regression on [absolute error, prediction]
  (the NeurIPS 2023 starting kit's loss attack, adapted to regression);
- ``population_attack(..., attacker="svc")``: an RBF SVC (C=3) on the same features, as in Deep
  Regression Unlearning's loss-feature attack;
- ``likelihood_ratio_scores``: a per-example attack in the style of LiRA / U-LiRA: for every example,
  Gaussians fitted to its score under shadow models trained WITH it and WITHOUT it; the target model's
  score gets the log-likelihood ratio (high = looks like a member).

Members and non-members are balanced (the larger class subsampled, seeded) and scored by stratified
k-fold cross-validation; accuracy is the mean over folds, AUC is computed on all out-of-fold scores.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from olvido.metrics.thesis import as_samples


def attack_features(y_true, y_pred) -> np.ndarray:
    """Per-sample attack features: ``[|y - prediction|, prediction]``, shape (n, 2)."""
    y_true = as_samples("y_true", y_true)
    y_pred = as_samples("y_pred", y_pred, len(y_true))
    return np.column_stack([np.abs(y_true - y_pred), y_pred])


def _attacker(kind: str, seed: int):
    if kind == "logistic":
        return make_pipeline(StandardScaler(), LogisticRegression(random_state=seed))
    if kind == "svc":
        return make_pipeline(StandardScaler(), SVC(C=3, kernel="rbf", gamma="scale", random_state=seed))
    raise ValueError(f"attacker {kind!r}: expected 'logistic' or 'svc'")


def population_attack(
    members: np.ndarray, nonmembers: np.ndarray, attacker: str = "logistic", folds: int = 5, seed: int = 0
) -> dict:
    """Accuracy and AUC of telling ``members`` from ``nonmembers`` (feature rows) by cross-validation.

    0.5 is chance. Returns ``accuracy``, ``auc`` and ``n_per_class``.
    """
    members, nonmembers = np.atleast_2d(members), np.atleast_2d(nonmembers)
    n = min(len(members), len(nonmembers))
    if n < folds:
        raise ValueError(f"need at least {folds} members and non-members, got {len(members)} and {len(nonmembers)}")
    rng = np.random.default_rng(seed)
    members = members[rng.choice(len(members), n, replace=False)]
    nonmembers = nonmembers[rng.choice(len(nonmembers), n, replace=False)]
    features = np.vstack([members, nonmembers])
    labels = np.r_[np.ones(n), np.zeros(n)]
    scores = np.zeros(2 * n)
    accuracies = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(features, labels):
        model = _attacker(attacker, seed).fit(features[train], labels[train])
        scores[test] = model.decision_function(features[test])
        accuracies.append(float((model.predict(features[test]) == labels[test]).mean()))
    return {"accuracy": float(np.mean(accuracies)), "auc": float(roc_auc_score(labels, scores)), "n_per_class": int(n)}


def likelihood_ratio_scores(
    target: np.ndarray, shadow: np.ndarray, shadow_in: np.ndarray, min_std: float = 1e-3
) -> np.ndarray:
    """Per-example LiRA score of a target model.

    ``target``: the target model's score per example, shape (n,). ``shadow``: shadow models' scores,
    [K, n]; ``shadow_in``: bool [K, n], True where the shadow model trained on the example. Returns
    ``log N(target; mu_in, sd_in) - log N(target; mu_out, sd_out)`` per example (NaN where an example
    has fewer than two IN or two OUT shadows).
    """
    target = as_samples("target", target)
    shadow, shadow_in = np.asarray(shadow, dtype=np.float64), np.asarray(shadow_in, dtype=bool)
    if shadow.shape != shadow_in.shape or shadow.ndim != 2 or shadow.shape[1] != len(target):
        raise ValueError(f"shadow scores {shadow.shape} and membership {shadow_in.shape} must be [K, {len(target)}]")

    def log_density(mask: np.ndarray) -> np.ndarray:
        count = mask.sum(axis=0)
        values = np.where(mask, shadow, 0.0)
        mean = values.sum(axis=0) / np.maximum(count, 1)
        var = (np.where(mask, shadow - mean, 0.0) ** 2).sum(axis=0) / np.maximum(count - 1, 1)
        std = np.maximum(np.sqrt(var), min_std)
        density = -0.5 * ((target - mean) / std) ** 2 - np.log(std)
        return np.where(count >= 2, density, np.nan)

    return log_density(shadow_in) - log_density(~shadow_in)


def score_attack(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float = 0.01) -> dict:
    """AUC and TPR at a low FPR of a per-example membership score (higher = member); NaNs dropped."""
    member_scores = np.asarray(member_scores, dtype=np.float64)
    nonmember_scores = np.asarray(nonmember_scores, dtype=np.float64)
    member_scores = member_scores[np.isfinite(member_scores)]
    nonmember_scores = nonmember_scores[np.isfinite(nonmember_scores)]
    if len(member_scores) == 0 or len(nonmember_scores) == 0:
        return {
            "auc": float("nan"),
            f"tpr_at_{fpr:g}_fpr": float("nan"),
            "n_members": len(member_scores),
            "n_nonmembers": len(nonmember_scores),
        }
    labels = np.r_[np.ones(len(member_scores)), np.zeros(len(nonmember_scores))]
    scores = np.r_[member_scores, nonmember_scores]
    fprs, tprs, _ = roc_curve(labels, scores)
    return {
        "auc": float(roc_auc_score(labels, scores)),
        f"tpr_at_{fpr:g}_fpr": float(np.interp(fpr, fprs, tprs)),
        "n_members": len(member_scores),
        "n_nonmembers": len(nonmember_scores),
    }


def leave_one_out_attack(scores: np.ndarray, membership: np.ndarray, fpr: float = 0.01) -> dict:
    """LiRA evaluated by leave-one-out over shadow models (U-LiRA's evaluation when the shadows were unlearned):
    each model in turn is the target; every example is scored by ``likelihood_ratio_scores`` from the other
    models' Gaussians, and the pooled (target, example) scores give AUC and TPR at ``fpr``.

    ``scores``: [S, n], each model's score of each example; ``membership``: bool [S, n], True where the model
    trained on the example (for U-LiRA: trained on it and then forgot it). 0.5 AUC: members and non-members
    are indistinguishable."""
    scores, membership = np.asarray(scores, dtype=np.float64), np.asarray(membership, dtype=bool)
    if scores.ndim != 2 or scores.shape != membership.shape:
        raise ValueError(
            f"expected scores and membership of one [S, n] shape, got {scores.shape} and {membership.shape}"
        )
    if len(scores) < 3:
        raise ValueError(f"expected at least 3 shadow models, got {len(scores)}")
    members, nonmembers = [], []
    for target in range(len(scores)):
        others = np.arange(len(scores)) != target
        ratio = likelihood_ratio_scores(scores[target], scores[others], membership[others])
        members.append(ratio[membership[target]])
        nonmembers.append(ratio[~membership[target]])
    return score_attack(np.concatenate(members), np.concatenate(nonmembers), fpr)
