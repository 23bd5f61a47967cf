"""Deletion requests on a bundled model: which images leave, what the model then trains on, and the audit.

``resolve_request`` turns file names or ids into the original ids to delete, refusing (one line, nothing
written) unknown files or ids, test images, augmented copies given by id, ids the model never trained on
and ids an earlier request already deleted. ``request_split`` is the forget split of the request on the
model's own data: the new ids are the forget set, the retain sets are what the model trained and
early-stopped on minus every deletion so far (earlier ones stay deleted) and the copies of all of them.

``audit`` runs the oracle-free checks (``olvido.metrics.audit``) on each model it is given, the model before
the deletion included: the deleted faces' MAE next to the MAE of unseen test faces of the same ages, and the
age-stratified membership attack of deleted against unseen faces. Given a retrained reference (a model
trained from scratch without every deleted image) it adds the thesis's Utility, Forgetting and F and the
Wasserstein distance to it, and the reference's own checks. ``conclusion`` reads it all as one plain verdict.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from olvido.data.forget import ForgetSplit, split_forget
from olvido.data.protocol import NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.experiments.bundle import Bundle
from olvido.experiments.workspace import Workspace
from olvido.metrics import f_score, forgetting, mean_absolute_error, prediction_wasserstein, utility
from olvido.metrics.audit import membership_finding, same_age_mae, same_age_membership
from olvido.storage import stable_hash

ALPHA = 15.0  # the thesis's Forgetting scale (years)
LEVEL = 0.05  # significance level of the membership test


@dataclass(frozen=True)
class DeletionRequest:
    request_id: str
    ids: np.ndarray  # original ids to delete, sorted
    files: list[str]  # their file names
    copies: np.ndarray  # augmented copies that leave with them

    def to_dict(self) -> dict:
        return {"ids": self.ids.tolist(), "files": self.files, "copies": self.copies.tolist()}


def _listed(what: list, limit: int = 5) -> str:
    shown = ", ".join(map(str, what[:limit]))
    return shown + (f" and {len(what) - limit} more" if len(what) > limit else "")


def resolve_request(
    bundle: Bundle,
    workspace: Workspace,
    ids: list[int] | None = None,
    files: list[str] | None = None,
    request_id: str | None = None,
) -> DeletionRequest:
    """The request's original ids (file names resolved), checked against the model's data (module docstring)."""
    table = workspace.prepared.manifest.table
    originals = table[table["source_id"] == NOT_AUGMENTED]
    if (ids is None) == (files is None):
        raise OlvidoError("deletion request: expected either file names or ids (one of --files, --ids)")
    if files is not None:
        by_name = dict(zip(originals["file"], originals["id"]))
        unknown = [name for name in files if name not in by_name]
        if unknown:
            raise OlvidoError(
                f"deletion request: unknown file names {_listed(unknown)}; expected file names of the "
                f"dataset the model was trained on (manifest {bundle.meta['manifest']})"
            )
        ids = [int(by_name[name]) for name in files]
    wanted = np.unique(np.asarray(ids, dtype=np.int64))
    if len(wanted) == 0:
        raise OlvidoError("deletion request: no ids or file names; expected at least one image")
    known = set(table["id"].tolist())
    unknown = [int(i) for i in wanted if int(i) not in known]
    if unknown:
        raise OlvidoError(f"deletion request: unknown ids {_listed(unknown)}; expected ids of the model's manifest")
    split = table.set_index("id").loc[wanted]
    copies = wanted[(split["source_id"] != NOT_AUGMENTED).to_numpy()]
    if len(copies):
        raise OlvidoError(
            f"deletion request: ids {_listed(copies.tolist())} are augmented copies; expected the original "
            "images' ids (their copies leave with them)"
        )
    test = wanted[(split["split"] == "test").to_numpy()]
    if len(test):
        raise OlvidoError(
            f"deletion request: ids {_listed(test.tolist())} are test images, which the model never trained on"
        )
    deleted = set(bundle.deleted.tolist())
    again = [int(i) for i in wanted if int(i) in deleted]
    if again:
        raise OlvidoError(
            f"deletion request: ids {_listed(again)} were already deleted from this model "
            f"(generation {bundle.meta['lineage']['generation']}); expected ids it still trains on"
        )
    trained = set(bundle.data_ids.tolist())
    never = [int(i) for i in wanted if int(i) not in trained]
    if never:
        raise OlvidoError(f"deletion request: the model never trained on ids {_listed(never)}")
    names = table.set_index("id").loc[wanted, "file"].tolist()
    copies = table.loc[table["source_id"].isin(wanted), "id"].to_numpy()
    request_id = request_id or "req-" + stable_hash({"model": bundle.model_hash, "ids": wanted.tolist()}, 12)
    return DeletionRequest(request_id, wanted, names, np.sort(copies))


def request_split(bundle: Bundle, workspace: Workspace, request: DeletionRequest) -> ForgetSplit:
    """Forget = the request's ids; retain = the model's own train/val ids minus every deletion so far."""
    manifest = workspace.prepared.manifest
    everything = split_forget(manifest, np.concatenate([bundle.deleted, request.ids]), "all deletions")
    retain_train, retain_val = everything.retain_train, everything.retain_val
    return ForgetSplit(
        spec=f"request:{request.request_id}",
        forget=request.ids,
        retain_train=retain_train[np.isin(retain_train, bundle.meta["train_ids"])],
        retain_val=retain_val[np.isin(retain_val, bundle.meta["val_ids"])],
        test=everything.test,
        removed_copies=request.copies,
    )


def unseen_ids(workspace: Workspace) -> np.ndarray:
    """Faces no model of this dataset ever trained on: the test split's originals."""
    return workspace.prepared.manifest.rows("test", originals_only=True)["id"].to_numpy()


def model_checks(workspace: Workspace, model: nn.Module, split: ForgetSplit, seed: int = 0) -> dict:
    """The oracle-free checks of one model on the request's faces."""
    unseen = unseen_ids(workspace)
    deleted_ages, unseen_ages = workspace.ages(split.forget), workspace.ages(unseen)
    deleted_pred, unseen_pred = workspace.predict(model, split.forget), workspace.predict(model, unseen)
    deleted_errors, unseen_errors = np.abs(deleted_ages - deleted_pred), np.abs(unseen_ages - unseen_pred)
    attack = same_age_membership(deleted_ages, deleted_errors, unseen_ages, unseen_errors, seed=seed)
    return {
        "n_deleted": len(split.forget),
        "deleted_mae": float(deleted_errors.mean()),
        "unseen_same_age_mae": same_age_mae(deleted_ages, unseen_ages, unseen_errors),
        "test_mae": mean_absolute_error(workspace.ages(split.test), workspace.predict(model, split.test)),
        "membership_auc": attack["auc"],
        "membership_p": attack["p_value"],
        "unseen_compared": attack["n_unseen"],
        "finding": membership_finding(attack["auc"], attack["p_value"], LEVEL),
        "_predictions": deleted_pred,
    }


def reference_checks(workspace: Workspace, model: dict, reference: dict, split: ForgetSplit) -> dict:
    """The thesis's metrics of a model against the retrained reference (both ``model_checks`` results)."""
    ages = workspace.ages(split.forget)
    value = {
        "utility": utility(reference["test_mae"], model["test_mae"]),
        "forgetting": forgetting(ages, model["_predictions"], reference["_predictions"], ALPHA),
        "wasserstein": prediction_wasserstein(model["_predictions"], reference["_predictions"]),
    }
    value["F"] = f_score(value["utility"], value["forgetting"])
    return value


def audit(
    workspace: Workspace, split: ForgetSplit, models: dict[str, nn.Module], reference: nn.Module | None = None
) -> dict:
    """Checks per model (``before``, ``after``, ...) and, with a reference, its metrics against it."""
    checks = {name: model_checks(workspace, model, split) for name, model in models.items()}
    result = {"checks": checks, "level": LEVEL, "alpha": ALPHA}
    if reference is not None:
        checks["retrained"] = model_checks(workspace, reference, split)
        result["against_retrained"] = {
            name: reference_checks(workspace, checks[name], checks["retrained"], split) for name in models
        }
    for values in checks.values():
        values.pop("_predictions")
    result["verdict"], result["summary"] = conclusion(result)
    return result


FINDING_TEXT = {
    "like_unseen": "treats the deleted faces like unseen faces of the same ages",
    "remembers": "still fits the deleted faces better than unseen faces of the same ages: it remembers them",
    "conspicuous": "fits the deleted faces worse than unseen faces of the same ages: the deletion itself shows",
}


def conclusion(result: dict) -> tuple[str, str]:
    """``(verdict, plain sentence)``: ``forgotten``, ``already forgotten``, ``not forgotten`` or
    ``conspicuous``, agreeing or not with the retrained reference when there is one."""
    checks = result["checks"]
    before, after = checks["before"]["finding"], checks["after"]["finding"]
    n = checks["after"]["n_deleted"]
    verdict = {"like_unseen": "forgotten", "remembers": "not forgotten", "conspicuous": "conspicuous"}[after]
    if after == "like_unseen" and before == "like_unseen":
        verdict = "already forgotten"
    text = [f"After the deletion the model {FINDING_TEXT[after]}."]
    if before == "like_unseen":
        text.append(
            "The model before the deletion already did: nothing it was asked to forget was detectably "
            "remembered" + (", so leaving it unchanged (--method none) was enough." if after == before else ".")
        )
    else:
        text.append(f"Before the deletion it {FINDING_TEXT[before].split(': ')[0].replace('still ', '')}.")
    if "retrained" in checks:
        reference = checks["retrained"]["finding"]
        agrees = reference == after
        text.append(
            f"A model retrained without every deleted image {FINDING_TEXT[reference].split(': ')[0]}: the verdict "
            + ("agrees with the retrained reference." if agrees else "DISAGREES with the retrained reference.")
        )
        verdict += " (agrees with retraining)" if agrees else " (disagrees with retraining)"
        against = result["against_retrained"]
        if "before" in against and against["after"]["F"] < against["before"]["F"]:
            before_f, after_f = against["before"], against["after"]
            text.append(
                f"The update moved the model further from the retrained reference (F {before_f['F']:.3f} -> "
                f"{after_f['F']:.3f}, Wasserstein distance {before_f['wasserstein']:.2f} -> "
                f"{after_f['wasserstein']:.2f} years): the unchanged model was closer to retraining."
            )
    if n < 20 and after == "like_unseen":
        text.append(f"With {n} image(s), only a large difference would be detectable.")
    return verdict, " ".join(text)
