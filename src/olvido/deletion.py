"""Honouring a deletion request on a deployed model: ``olvido forget`` as a library call.

The top floor of the library beside ``pipeline`` (it writes the audit report through ``report``):

1. load the bundle (its weights checked against its metadata) and the ledger (``ledger.sqlite3`` beside the
   model unless given); rebuild the model's dataset and workspace from the bundle's recipe;
2. resolve the request (``experiments.audit.resolve_request``): a request id already in the ledger for the
   same model and ids returns its recorded result, deleting nothing twice; a model that is not the ledger's
   latest is refused (its child exists: earlier deletions would come back);
3. unlearn with the chosen method on the model's own remaining data (default: the study's leaderboard
   leader for the model's scope, ``RECOMMENDED_METHOD``; ``none`` keeps the weights and records the
   deletion; ``retrain`` is exact; a SISA model's bundle deletes exactly, retraining the slices that held the
   images), then audit the model before and after, and with ``verify`` a model retrained without every
   deleted image;
4. commit the child bundle and its audit report (Markdown and JSON) with their ledger row in one transaction
   (``ledger.Ledger.commit``): all or nothing.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from olvido.errors import OlvidoError
from olvido.experiments.audit import audit, request_split, resolve_request
from olvido.experiments.bundle import bundle_bytes, load_bundle
from olvido.experiments.sisa import Sisa
from olvido.ledger import LEDGER_NAME, Ledger, LedgerRow
from olvido.methods import get_method, list_methods
from olvido.report.audit_report import audit_paths, render_audit

# The leader of each scope in the committed study at the methods' default settings, the ones a deletion
# uses (highest F in docs/results/leaderboard.csv, where a tuned method counts at its default from
# default_vs_tuned.csv; a test keeps this table and those files in step). The `all` scope has no study:
# fine-tuning, the thesis's method, which every scope supports.
RECOMMENDED_METHOD = {"head": "salun", "last": "reset_distill", "all": "finetune"}
NO_CHANGE = "none"
SISA = "sisa"  # the exact deletion of a SISA model's bundle: its default and only method besides none


@dataclass
class DeletionOutcome:
    request_id: str
    row: LedgerRow
    record: dict
    reused: bool  # the request was already recorded: nothing was done again

    @property
    def child_path(self) -> Path:
        return Path(self.row.child_path)


def default_ledger(model: str | os.PathLike) -> Path:
    return Path(model).resolve().parent / LEDGER_NAME


def honour_request(
    model: str | os.PathLike,
    out: str | os.PathLike,
    *,
    ids: list[int] | None = None,
    files: list[str] | None = None,
    method: str | None = None,
    verify: bool = False,
    request_id: str | None = None,
    ledger: str | os.PathLike | None = None,
    data: str | os.PathLike | None = None,
    cache=None,
    progress: bool = True,
    device: str = "auto",
) -> DeletionOutcome:
    """Delete ``ids`` or ``files`` from the bundle at ``model``; write the child bundle to ``out`` (module
    docstring)."""
    started = time.perf_counter()
    parent = load_bundle(model)
    method = _method(parent, method)
    workspace = parent.workspace(parent.prepare(data, cache, progress), cache, progress, device)
    request = resolve_request(parent, workspace, ids, files, request_id)
    book = Ledger(ledger or default_ledger(model))  # opened once the request is valid: a bad one leaves no file
    recorded = book.find(request.request_id)
    if recorded is not None:
        return _recorded(recorded, parent.model_hash, request.ids.tolist())
    latest = book.latest()
    if latest is not None and latest.child_hash != parent.model_hash:
        raise OlvidoError(
            f"{model}: not the latest model of ledger {book.path} (the latest is {latest.child_path}, request "
            f"{latest.request_id}); expected the latest model, so that earlier deletions stay deleted"
        )
    out = Path(out)
    if out.exists():
        raise OlvidoError(f"--out {out}: already exists; expected a new file for the model after the deletion")
    split = request_split(parent, workspace, request)
    before = parent.trained_model(workspace)
    seconds = {"unlearn": 0.0, "checks": 0.0, "verify": 0.0}
    tick = time.perf_counter()
    if method == NO_CHANGE:
        after, config, label = before, {}, "no change"
    elif method == SISA:
        fitted = Sisa(workspace, parent.sisa).fit(split.retain_train)  # only the changed slices train
        after, label = fitted.model, "SISA (exact)"
        config = {**parent.meta["sisa"], "retrained_slices": fitted.trained_slices, "slices": fitted.total_slices}
    else:
        unlearned = workspace.unlearn(method, before, split, seed=0)
        after, config, label = unlearned.model, unlearned.config.to_dict(), get_method(method).label
    seconds["unlearn"] = round(time.perf_counter() - tick, 2)
    reference = None
    if verify:
        tick = time.perf_counter()
        reference = _retrained(parent, workspace, split)
        seconds["verify"] = round(time.perf_counter() - tick, 2)
    tick = time.perf_counter()
    result = audit(workspace, split, {"before": before, "after": after}, reference)
    seconds["checks"] = round(time.perf_counter() - tick, 2)
    generation = parent.meta["lineage"]["generation"]
    child = parent.child(
        workspace,
        after,
        request.to_dict(),
        lineage={"parent": parent.model_hash, "request_id": request.request_id, "generation": generation + 1},
        method={"name": method, "config": config},
    )
    seconds["total"] = round(time.perf_counter() - started, 2)
    record = {
        "request": {"id": request.request_id, **request.to_dict()},
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "models": {
            "before": {"hash": parent.model_hash, "path": str(model), "generation": generation},
            "after": {"hash": child.model_hash, "path": str(out), "generation": generation + 1},
        },
        "method": {"name": method, "label": label, "config": config},
        "data": {
            "deleted_before": len(parent.deleted),
            "retain_train": len(split.retain_train),
            "retain_val": len(split.retain_val),
        },
        "seconds": seconds,
        "audit": result,
    }
    files = {path.resolve(): data for path, data in render_audit(out, record).items()}
    files[out.resolve()] = bundle_bytes(child)
    row = book.commit(
        {
            "request_id": request.request_id,
            "ids": request.ids.tolist(),
            "files": request.files,
            "method": method,
            "config": config,
            "parent_hash": parent.model_hash,
            "child_hash": child.model_hash,
            "child_path": str(out.resolve()),
            "report_path": str(audit_paths(out)[0].resolve()),
            "report_sha256": {
                str(path): hashlib.sha256(data).hexdigest() for path, data in files.items() if path != out.resolve()
            },
        },
        files,
    )
    if row.child_hash != child.model_hash:  # the same request, committed meanwhile by another process
        return _recorded(row, parent.model_hash, request.ids.tolist())
    return DeletionOutcome(request.request_id, row, record, reused=False)


def _method(parent, method: str | None) -> str:
    """The request's method: the given one if the model supports it, else the default for the model."""
    if parent.sisa is not None:
        if method not in (None, SISA, NO_CHANGE):
            raise OlvidoError(f"--method {method}: a SISA model deletes exactly; expected {SISA} (default) or none")
        return method or SISA
    method = method or RECOMMENDED_METHOD[parent.scope]
    if method != NO_CHANGE and method not in list_methods(parent.scope):
        raise OlvidoError(
            f"--method {method}: not available for the {parent.scope} scope; expected {NO_CHANGE} or one of "
            f"{', '.join(list_methods(parent.scope))}"
        )
    return method


def _retrained(parent, workspace, split):
    """The reference: the model's recipe trained from scratch without every deleted image (for a SISA model,
    every slice trained afresh in a temporary store, never from the cached checkpoints)."""
    if parent.sisa is None:
        seed = parent.meta["recipe"]["seed"]
        return workspace.train(split.retain_train, split.retain_val, seed=seed, role="retrained").model
    with tempfile.TemporaryDirectory(prefix="olvido-sisa-reference-") as store:
        return Sisa(workspace, parent.sisa, store=Path(store)).fit(split.retain_train).model


def _recorded(row: LedgerRow, parent_hash: str, ids: list[int]) -> DeletionOutcome:
    """The recorded outcome of a request seen before, if it is the same request."""
    if row.parent_hash != parent_hash or row.ids != ids:
        raise OlvidoError(
            f"request {row.request_id}: already recorded for another model or other ids (row {row.seq}); "
            "expected a new --request-id"
        )
    if not Path(row.child_path).exists():
        raise OlvidoError(f"request {row.request_id}: recorded, but its model {row.child_path} is missing")
    report = audit_paths(row.child_path)[1]
    if not report.exists():
        raise OlvidoError(f"request {row.request_id}: recorded, but its audit report {report} is missing")
    record = json.loads(report.read_text())
    return DeletionOutcome(row.request_id, row, record, reused=True)
