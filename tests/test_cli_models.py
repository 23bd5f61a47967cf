"""The model and verdict commands end to end on a small synthetic set (JSON output, cache hits, errors)."""

import json

import pandas as pd
import pytest

from olvido.cli import _workspace, build_parser, main
from olvido.data.protocol import NOT_AUGMENTED

from helpers import needs_weights

COMMON = ["--data", "synthetic:2000", "--init", "imagenet", "--ensemble", "1", "--no-mirror", "--json"]


@pytest.fixture(scope="module")
def warm_cache(share_features):
    """``warm_cache(folder)`` puts the features of COMMON's faces and model (the session's synthetic faces:
    ``synthetic:2000`` is ``make_synthetic_faces(2000)``) into a test's cache, extracted once per session,
    and no trained model: each test pays for its own trainings only."""
    return lambda folder: share_features(folder, models=False)


@needs_weights
def test_train_export_retrain_forget_and_ledger_commands(tmp_path, capsys, warm_cache):
    warm_cache(tmp_path)
    cache = ["-q", "--cache", str(tmp_path)]
    assert main([*cache, "train", "original", *COMMON, "--export", str(tmp_path / "m0.olvido")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["role"] == "original" and first["from_cache"] is False
    assert first["bundle"] == str(tmp_path / "m0.olvido") and len(first["model_hash"]) == 64
    assert set(first["test_mae_by_group"]) == {"20-28", "29-36", "37-44", "45-52", "53-60"}
    assert first["test_mae"] > 0 and first["members"][0]["best_epoch"] >= 1
    assert main([*cache, "train", "original", *COMMON]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["from_cache"] is True and again["test_mae"] == first["test_mae"]
    assert main([*cache, "train", "retrain", "--forget", "group:4", *COMMON]) == 0
    retrained = json.loads(capsys.readouterr().out)
    assert retrained["forget"]["spec"] == "group:4" and retrained["forget"]["forget"] > 0

    # the exported bundle, through forget and ledger
    table = _workspace(build_parser().parse_args([*cache, "train", "original", *COMMON])).prepared.manifest.table
    originals = table[(table["source_id"] == NOT_AUGMENTED) & (table["split"] == "train")]
    request = tmp_path / "request.txt"
    request.write_text("\n".join(originals["file"].iloc[:4]) + "\n")
    forget = ["forget", "--model", str(tmp_path / "m0.olvido"), "--files", f"@{request}", "--method", "none"]
    assert main([*cache, *forget, "--out", str(tmp_path / "m1.olvido")]) == 0
    printed = capsys.readouterr().out
    assert "4 image(s) deleted with no change" in printed and "verdict" in printed
    ledger = ["ledger", "--ledger", str(tmp_path / "ledger.sqlite3")]
    assert main([*ledger, "list"]) == 0 and "| 1 | req-" in capsys.readouterr().out
    assert main([*ledger, "verify", "--model", str(tmp_path / "m1.olvido")]) == 0
    assert "1 row(s), the hash chain verifies" in capsys.readouterr().out
    assert main([*ledger, "show", "nope"]) == 2 and "request nope: not in ledger" in capsys.readouterr().err
    assert main([*cache, "forget", "--model", str(tmp_path / "m0.olvido"), "--ids", "x", "--out", "y"]) == 2
    assert "--ids: 'x' is not an id" in capsys.readouterr().err


@needs_weights
def test_evaluate_prints_the_verdict_table_as_json(tmp_path, capsys, warm_cache):
    warm_cache(tmp_path)
    args = [
        "-q",
        "--cache",
        str(tmp_path),
        "evaluate",
        *COMMON,
        "--forget",
        "group:0",
        "--methods",
        "finetune",
        "--best-epochs",
        "finetune=2",
        "--k",
        "0",
        "--shadows",
        "0",
        "--tests",
        "fi",
    ]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    models = [row["model"] for row in result["rows"]]
    assert models == ["original", "finetune", "retrained (another seed)"]
    assert result["neurips"] == []  # K = 0: no NeurIPS score
    for row in result["rows"]:  # K = 0 and no shadows: the single-model verdicts (K-model ones: test_verdicts)
        assert "lira_auc" not in row
        assert {"mia_logistic_acc", "mia_svc_acc", "wasserstein", "relearn_epochs", "utility"} <= set(row)
    rows = {row["model"]: row for row in result["rows"]}
    assert rows["retrained (another seed)"]["forgetting"] > rows["original"]["forgetting"]
    assert [r["model"] for r in result["feature_injection"]] == ["original", "retrained", "finetune"]
    # the same verdicts at a tuned configuration (a tuned.yaml as olvido tune writes it)
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "tuned.yaml").write_text("head:\n  finetune:\n    params: {epochs: 1, lr: 0.0005}\n")
    tuned = [a for a in args if a not in ("--best-epochs", "finetune=2", "--tests", "fi")]
    assert main([*tuned, "--tuned", str(tmp_path / "tuned")]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["finetune"]["value"] == {"epochs": 1, "lr": 0.0005}
    assert rows["original"]["forget_mae"] == pytest.approx(result["rows"][0]["forget_mae"])  # the same O
    # several folders: where two tune the same method, the last one's configuration is judged
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "tuned.yaml").write_text("head:\n  finetune:\n    params: {epochs: 2, lr: 0.001}\n")
    assert main([*tuned, "--tuned", str(tmp_path / "tuned"), str(tmp_path / "later")]) == 0
    rows = {row["model"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["finetune"]["value"] == {"epochs": 2, "lr": 0.001}
    assert main([*args, "--tuned", str(tmp_path / "tuned")]) == 2
    assert "--tuned and --best: expected one of them" in capsys.readouterr().err


def test_bad_model_options_fail_in_one_line(tmp_path, capsys):
    assert main(["--cache", str(tmp_path), "train", "retrain", "--data", "synthetic:1500", "--forget", "group:9"]) == 2
    assert "expected 0..4" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "original", "--scope", "everything"])
    assert (
        main(["--cache", str(tmp_path), "train", "original", "--data", "synthetic:1500", "--backbone", "alexnet"]) == 2
    )
    assert "no registered family" in capsys.readouterr().err


@needs_weights
def test_sisa_trains_deletes_one_image_and_evaluates_from_the_cache(tmp_path, capsys, warm_cache):
    warm_cache(tmp_path)
    cache = ["-q", "--cache", str(tmp_path)]
    sisa = ["--shards", "2", "--slices", "2", "--sisa-epochs", "3"]
    assert main([*cache, "sisa", "train", *COMMON, *sisa]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["trained_slices"] == trained["total_slices"] == 4 and trained["test_mae"] > 0
    assert trained["expected_fraction_one_deletion"] == round(5 / 12, 4)
    (manifest,) = (tmp_path / "manifests").glob("manifest-*.csv")
    table = pd.read_csv(manifest)
    image = int(table.loc[(table["split"] == "train") & (table["source_id"] == NOT_AUGMENTED), "id"].iloc[0])
    assert main([*cache, "sisa", "forget", *COMMON, *sisa, "--forget", f"ids:{image}"]) == 0
    deleted = json.loads(capsys.readouterr().out)
    assert deleted["forget"]["forget"] == 1 and 1 <= deleted["trained_slices"] <= 2
    assert 0 < deleted["fraction_trained"] < 1 and deleted["forget_mae"] >= 0
    assert main([*cache, "sisa", "evaluate", *COMMON, *sisa, "--forget", f"ids:{image}"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["trained_slices"] == 0 and evaluated["test_mae"] == deleted["test_mae"]
    assert main([*cache, "sisa", "forget", *COMMON, *sisa]) == 2
    assert "expected --forget SPEC" in capsys.readouterr().err
