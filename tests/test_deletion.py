"""Deletion requests end to end (olvido.deletion, the bundle, the audit, olvido forget / olvido ledger) on
synthetic faces: bad requests, idempotency, a kill between the commit and the files, concurrent requests,
edited bundles."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest
import torch

from olvido.checkpoint import checkpoint_bytes, safe_load
from olvido.cli import main
from olvido.data.protocol import NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.ledger import Ledger

from helpers import needs_weights, small_workspace

pytestmark = needs_weights
DATA = "synthetic:2000"  # the conftest's faces: the bundle's recorded dataset rebuilds the same manifest
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, prepared, share_features):
    """A cache holding the features and the original, and the original's bundle."""
    from olvido.experiments.bundle import export_bundle, save_bundle

    folder = tmp_path_factory.mktemp("deployed")
    cache = share_features(folder / "cache")
    workspace = small_workspace(prepared, cache)
    bundle = export_bundle(workspace, workspace.original(seed=0), DATA)
    save_bundle(bundle, folder / "m0.olvido")
    table = prepared.manifest.table
    originals = table[table["source_id"] == NOT_AUGMENTED]
    return {
        "cache": cache,
        "bundle": folder / "m0.olvido",
        "hash": bundle.model_hash,
        "train": originals[originals["split"] == "train"]["id"].tolist(),
        "test": originals[originals["split"] == "test"]["id"].tolist(),
        "copy": int(table[table["source_id"] != NOT_AUGMENTED]["id"].iloc[0]),
        "files": dict(zip(originals["id"], originals["file"])),
    }


@pytest.fixture
def model(deployed, tmp_path):
    """A fresh copy of the deployed bundle in this test's folder (its ledger will be beside it)."""
    return Path(shutil.copy(deployed["bundle"], tmp_path / "m0.olvido"))


def forget(deployed, model, out, **options):
    from olvido.deletion import honour_request

    options.setdefault("method", "finetune")
    return honour_request(model, out, cache=deployed["cache"], progress=False, **options)


def test_the_bundle_round_trips_and_rebuilds_its_workspace(deployed, prepared):
    from olvido.experiments.bundle import load_bundle

    bundle = load_bundle(deployed["bundle"])
    workspace = bundle.workspace(bundle.prepare(cache=deployed["cache"], progress=False), deployed["cache"], False)
    original = small_workspace(prepared, deployed["cache"]).original(seed=0).model
    ids = deployed["test"][:50]
    assert torch.equal(
        torch.from_numpy(workspace.predict(bundle.trained_model(workspace), ids)),
        torch.from_numpy(workspace.predict(original, ids)),
    )
    assert bundle.meta["train_ids"] == sorted(workspace.split_ids("train").tolist())
    assert bundle.meta["recipe"]["seed"] == 0 and bundle.meta["lineage"]["generation"] == 0
    deployable = workspace.deployable(bundle.trained_model(workspace))  # images in, ages out
    images = torch.from_numpy(prepared.images()[:4]).permute(0, 3, 1, 2).float() / 255
    assert deployable(images).shape == (4,)


def test_three_requests_in_a_row_keep_earlier_deletions_and_verify(deployed, model, tmp_path):
    train = deployed["train"]
    first = forget(deployed, model, tmp_path / "m1.olvido", ids=train[:5])
    names = [deployed["files"][i] for i in train[5:6]]
    second = forget(deployed, first.child_path, tmp_path / "m2.olvido", files=names, method="none")
    third = forget(deployed, second.child_path, tmp_path / "m3.olvido", ids=train[6:26], verify=True)
    rows = Ledger(tmp_path / "ledger.sqlite3").rows()
    assert [r.request_id for r in rows] == [first.request_id, second.request_id, third.request_id]
    assert rows[1].parent_hash == rows[0].child_hash and rows[1].files == names
    from olvido.experiments.bundle import load_bundle

    last = load_bundle(tmp_path / "m3.olvido")
    assert last.meta["deleted"]["ids"] == sorted(train[:26]) and last.meta["lineage"]["generation"] == 3
    assert third.record["data"]["deleted_before"] == 6
    # `none` keeps the weights: only the record changes
    assert (
        load_bundle(tmp_path / "m2.olvido").meta["weights_sha256"]
        == load_bundle(first.child_path).meta["weights_sha256"]
    )
    audit = third.record["audit"]
    assert set(audit["checks"]) == {"before", "after", "retrained"}
    assert set(audit["against_retrained"]["after"]) == {"utility", "forgetting", "wasserstein", "F"}
    assert audit["verdict"].endswith("retraining)")
    report = (tmp_path / "m3.audit.md").read_text()
    assert "Verdict:" in report and deployed["files"][train[7]] in report
    assert (
        main(["ledger", "--ledger", str(tmp_path / "ledger.sqlite3"), "verify", "--model", str(tmp_path / "m3.olvido")])
        == 0
    )


def test_rerunning_a_request_returns_the_recorded_result(deployed, model, tmp_path):
    ids = deployed["train"][:3]
    first = forget(deployed, model, tmp_path / "m1.olvido", ids=ids, request_id="ticket-7", method="none")
    bundle_bytes = (tmp_path / "m1.olvido").read_bytes()
    again = forget(deployed, model, tmp_path / "elsewhere.olvido", ids=ids, request_id="ticket-7", method="none")
    assert again.reused and again.row == first.row and again.record == first.record
    assert (tmp_path / "m1.olvido").read_bytes() == bundle_bytes and not (tmp_path / "elsewhere.olvido").exists()
    with pytest.raises(OlvidoError, match="ticket-7: already recorded for another model or other ids"):
        forget(deployed, model, tmp_path / "m1b.olvido", ids=ids[:2], request_id="ticket-7")
    assert len(Ledger(tmp_path / "ledger.sqlite3").rows()) == 1


def _unchanged(folder: Path, request) -> str:
    """Run ``request``, which must fail; return its message, checking that no file appeared or changed."""
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(OlvidoError) as error:
        request()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert "\n" not in str(error.value)
    return str(error.value)


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"files": ["nobody.jpg"]}, "unknown file names nobody.jpg"),
        ({"ids": [999999]}, "unknown ids 999999"),
        ({"ids": "test"}, "are test images"),
        ({"ids": "copy"}, "are augmented copies"),
        ({"ids": "train", "method": "ct"}, "--method ct: not available for the head scope"),
    ],
)
def test_bad_requests_fail_in_one_line_and_write_nothing(deployed, model, tmp_path, bad, message):
    request = dict(bad)
    if isinstance(request.get("ids"), str):
        request["ids"] = {"test": deployed["test"][:1], "copy": [deployed["copy"]], "train": deployed["train"][:1]}[
            request["ids"]
        ]
    assert message in _unchanged(tmp_path, lambda: forget(deployed, model, tmp_path / "m1.olvido", **request))


def test_deleting_again_or_from_an_older_model_is_refused(deployed, model, tmp_path):
    train = deployed["train"]
    first = forget(deployed, model, tmp_path / "m1.olvido", ids=train[:2], method="none")
    again = _unchanged(tmp_path, lambda: forget(deployed, first.child_path, tmp_path / "m2.olvido", ids=train[1:3]))
    assert "ids 1" not in again and f"ids {train[1]} were already deleted" in again
    older = _unchanged(tmp_path, lambda: forget(deployed, model, tmp_path / "m2.olvido", ids=train[5:6]))
    assert "not the latest model of ledger" in older
    exists = _unchanged(tmp_path, lambda: forget(deployed, first.child_path, first.child_path, ids=train[5:6]))
    assert "already exists" in exists


KILL = """
import os, sys
import olvido.ledger
olvido.ledger.atomic_write_bytes = lambda path, data: os._exit(9)  # killed after the commit, writing the files
from olvido.deletion import honour_request
honour_request(sys.argv[1], sys.argv[2], ids=[int(sys.argv[3])], cache=sys.argv[4], progress=False, method="none")
"""


def test_a_kill_between_commit_and_files_is_finished_by_the_rerun(deployed, model, tmp_path):
    out, target = tmp_path / "m1.olvido", deployed["train"][0]
    arguments = [str(model), str(out), str(target), str(deployed["cache"])]
    killed = subprocess.run([sys.executable, "-c", textwrap.dedent(KILL), *arguments], cwd=REPO, timeout=300)
    assert killed.returncode == 9
    with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:  # as the kill left it: the row and the files' bytes
        assert db.execute("SELECT COUNT(*) FROM requests").fetchone()[0] == 1
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone()[0] == 3
    assert not out.exists()
    rerun = forget(deployed, model, out, ids=[target], method="none")
    assert rerun.reused and out.exists()
    assert main(["ledger", "--ledger", str(tmp_path / "ledger.sqlite3"), "verify", "--model", str(out)]) == 0


def test_two_requests_on_one_parent_at_once_make_one_child(deployed, model, tmp_path):
    outcomes = {}

    def request(number: int) -> None:
        try:
            ids = deployed["train"][number * 3 : number * 3 + 3]
            outcomes[number] = forget(deployed, model, tmp_path / f"child{number}.olvido", ids=ids, method="none")
        except OlvidoError as error:
            outcomes[number] = error

    threads = [threading.Thread(target=request, args=(number,)) for number in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    failed = [o for o in outcomes.values() if isinstance(o, OlvidoError)]
    assert len(outcomes) == 2 and len(failed) == 1
    assert "not the latest model" in str(failed[0])
    rows = Ledger(tmp_path / "ledger.sqlite3").rows()
    assert len(rows) == 1 and len(list(tmp_path.glob("child*.olvido"))) == 1


def _edit_bundle(path: Path, edit) -> None:
    payload = safe_load(path)
    state, meta = payload["state_dict"], json.loads(payload["meta"])
    edit(state, meta)
    path.write_bytes(checkpoint_bytes(state, meta, payload["format"]))


def test_hand_edited_bundles_are_detected(deployed, model, tmp_path, capsys):
    out = tmp_path / "m1.olvido"
    forget(deployed, model, out, ids=deployed["train"][:2], method="none")
    ledger = str(tmp_path / "ledger.sqlite3")
    assert main(["ledger", "--ledger", ledger, "verify", "--model", str(out)]) == 0

    def hide_a_deletion(state, meta):
        meta["deleted"]["ids"] = meta["deleted"]["ids"][1:]

    _edit_bundle(out, hide_a_deletion)  # metadata edited, weights untouched: loads, but is not the ledger's model
    assert main(["ledger", "--ledger", ledger, "verify", "--model", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "BROKEN; first broken link: row 1" in printed and "does not match the recorded child hash" in printed

    def nudge_a_weight(state, meta):
        name = next(k for k in state if k.startswith("1."))
        state[name] = state[name] + 1e-3

    _edit_bundle(model, nudge_a_weight)
    assert main(["forget", "--model", str(model), "--ids", "1", "--out", str(tmp_path / "x.olvido")]) == 2
    assert "weights do not match the bundle's recorded weights hash" in capsys.readouterr().err


def test_a_sisa_bundle_deletes_exactly(deployed, prepared, tmp_path):
    from olvido.experiments.bundle import export_sisa_bundle, load_bundle, save_bundle
    from olvido.experiments.sisa import Sisa, SisaConfig
    from olvido.training import FitConfig

    workspace = small_workspace(prepared, deployed["cache"], FitConfig(epochs=4, batch_size=128, lr=2e-3))
    sisa = Sisa(workspace, SisaConfig(shards=2, slices=3, epochs=4))
    save_bundle(export_sisa_bundle(sisa, sisa.train(), DATA), tmp_path / "sisa.olvido")
    assert load_bundle(tmp_path / "sisa.olvido").meta["val_ids"] == []
    with pytest.raises(OlvidoError, match="a SISA model deletes exactly"):
        forget(deployed, tmp_path / "sisa.olvido", tmp_path / "x.olvido", ids=deployed["train"][:1])
    validation = workspace.prepared.manifest.rows("val", originals_only=True)["id"].tolist()[:1]
    with pytest.raises(OlvidoError, match="the model never trained on ids"):  # SISA trains on the train split only
        forget(deployed, tmp_path / "sisa.olvido", tmp_path / "x.olvido", ids=validation, method=None)
    outcome = forget(
        deployed, tmp_path / "sisa.olvido", tmp_path / "s1.olvido", ids=deployed["train"][:2], method=None, verify=True
    )
    assert outcome.row.method == "sisa" and 0 < outcome.record["method"]["config"]["retrained_slices"] < 6
    against = outcome.record["audit"]["against_retrained"]["after"]
    assert against["wasserstein"] == 0 and against["forgetting"] == 1  # the very model trained from scratch
    assert outcome.record["audit"]["verdict"].endswith("(agrees with retraining)")


def test_the_recommended_methods_are_the_committed_leaderboards_leaders():
    from olvido.deletion import RECOMMENDED_METHOD

    # a deletion runs the method at its default setting: the leader among the methods' default settings,
    # where the board ranks a tuned method at its tuned configuration and default_vs_tuned.csv has its default
    results = REPO / "docs" / "results"
    board = pd.read_csv(results / "leaderboard.csv")
    defaults = board[~board["reference"] & ~board["tuned"]]
    if (results / "default_vs_tuned.csv").exists():
        tuned = pd.read_csv(results / "default_vs_tuned.csv")
        defaults = pd.concat([defaults, tuned[tuned["variant"] == "default"]], ignore_index=True)
    methods = board[~board["reference"]]
    for scope, rows in methods.groupby("scope"):  # each method once, at its default setting
        assert sorted(defaults[defaults["scope"] == scope]["method"]) == sorted(rows["method"])
    for scope, rows in defaults.groupby("scope"):
        assert RECOMMENDED_METHOD[scope] == rows.sort_values("F").iloc[-1]["method"]
