"""Tests of the tests: the verdicts give the known answers on cases whose truth we control."""

import numpy as np
import pytest
import torch

from olvido.data import parse_forget
from olvido.errors import OlvidoError
from olvido.executor import get_executor
from olvido.experiments.verdicts import (
    ORIGINAL,
    RETRAINED_OTHER_SEED,
    VerdictConfig,
    Verdicts,
    feature_injection,
    interclass_confusion,
)
from olvido.experiments.workspace import ModelConfig, Workspace, _fit_job
from olvido.metrics.distances import mean_prediction_difference, prediction_wasserstein
from olvido.metrics.mia import (
    attack_features,
    leave_one_out_attack,
    likelihood_ratio_scores,
    population_attack,
    score_attack,
)
from olvido.training import FitConfig

from helpers import needs_weights, small_workspace


def test_population_attack_separates_memorised_from_unseen_and_not_alike():
    rng = np.random.default_rng(0)
    ages = rng.uniform(20, 28, 400)
    memorised = attack_features(ages[:200], ages[:200] + rng.normal(0, 0.5, 200))
    unseen = attack_features(ages[200:], ages[200:] + rng.normal(0, 6, 200))
    alike = attack_features(ages[:200], ages[:200] + rng.normal(0, 6, 200))
    for attacker in ("logistic", "svc"):
        assert population_attack(memorised, unseen, attacker)["accuracy"] > 0.85
        chance = population_attack(alike, unseen, attacker)
        assert abs(chance["accuracy"] - 0.5) < 0.1 and abs(chance["auc"] - 0.5) < 0.1


def test_population_attack_balances_classes():
    rng = np.random.default_rng(1)
    result = population_attack(rng.normal(0, 1, (500, 2)), rng.normal(0, 1, (60, 2)))
    assert result["n_per_class"] == 60


def test_likelihood_ratio_scores_by_hand():
    membership = np.array([[True], [True], [True], [False], [False], [False]])
    shadow = np.array([[1.0], [1.1], [0.9], [0.0], [0.1], [-0.1]])
    member_like = likelihood_ratio_scores(np.array([1.0]), shadow, membership)[0]
    outsider_like = likelihood_ratio_scores(np.array([0.0]), shadow, membership)[0]
    # means 1 and 0, both standard deviations 0.1: the ratio is +-(1/0.1)^2 / 2 = +-50
    assert member_like == pytest.approx(50.0) and outsider_like == pytest.approx(-50.0)
    too_few = likelihood_ratio_scores(np.array([1.0]), shadow[2:], membership[2:])
    assert np.isnan(too_few[0])  # one IN shadow only
    assert score_attack([member_like, 40.0], [outsider_like, -30.0])["auc"] == 1.0


def test_distances_by_hand():
    assert prediction_wasserstein([0.0, 1.0], [1.0, 2.0]) == pytest.approx(1.0)
    assert prediction_wasserstein([0.0, 1.0], [1.0, 0.0]) == 0.0  # same distribution, different order
    assert mean_prediction_difference([0.0, 1.0], [1.0, 0.0]) == 1.0  # paired: differs per sample


@pytest.fixture(scope="module")
def workspace(prepared, tmp_path_factory, share_features):
    return small_workspace(prepared, share_features(tmp_path_factory.mktemp("verdicts")))


@needs_weights
def test_retraining_looks_like_a_perfect_forget_and_the_original_does_not(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    verdicts = Verdicts(workspace, split, VerdictConfig(k=6, shadows=4, resamples=500))
    rows = {r["model"]: r for r in verdicts.evaluate({})}
    again = Verdicts(workspace, split, VerdictConfig(k=6, shadows=4, resamples=500))
    again.measure = again.prepare_references = None  # a rerun reads the stored rows, computing nothing

    def shared(row):
        return {k: v for k, v in row.items() if k not in ("reference_seconds", "total_seconds")}

    assert [shared(r) for r in again.evaluate({})] == [shared(r) for r in rows.values()]
    assert again.neurips == verdicts.neurips
    other, original = rows[RETRAINED_OTHER_SEED], rows[ORIGINAL]
    assert other["forgetting"] > 0.85  # 1 minus seed noise
    assert original["forgetting"] < other["forgetting"] - 0.1
    scores = {(r["model"], r["scalar"]): r for r in verdicts.neurips}
    assert {r["protocol"] for r in verdicts.neurips} == {"K originals", "K retrained"}
    for scalar in ("prediction", "neg_abs_error"):
        sane, told_apart = scores[(RETRAINED_OTHER_SEED, scalar)], scores[(ORIGINAL, scalar)]
        # a third set of retrained models calibrates to about 1 (within its interval); the originals far below
        assert sane["calibrated_low"] <= 1.0 <= sane["calibrated_high"], sane
        assert told_apart["calibrated_high"] < sane["calibrated_low"], (told_apart, sane)
        assert sane["f_rr"] == told_apart["f_rr"] > 0  # one calibration set for every row
        assert 0.5 < sane["spread_ratio"] < 2
    assert original["wasserstein"] > 2 * other["wasserstein"]
    # Population attacks: another retrained model is no easier to attack than the reference (up to the
    # sampling noise of a few dozen same-age test images); the canary test below checks their power.
    assert abs(other["mia_logistic_gap"]) < 0.2 and abs(other["mia_svc_gap"]) < 0.2
    assert original["relearn_epochs"] == 0  # O already has O's forget MAE
    assert other["relearn_epochs"] is None or other["relearn_epochs"] > 0


@needs_weights
def test_a_planted_canary_is_flagged_on_the_original_and_not_after_retraining(prepared, tmp_path, share_features):
    # Memorising one image needs training past the early-stopping point: a fixed 20 epochs, on a
    # 1,500-image subset to keep the ten trainings fast.
    workspace = Workspace(
        prepared,
        ModelConfig(init="imagenet", ensemble=1, mirror=False),
        cache=share_features(tmp_path),
        progress=False,
        fit_config=FitConfig(epochs=20, batch_size=128, lr=2e-3, patience=None),
    )
    table = workspace.prepared.manifest.table
    train = table[(table["split"] == "train") & (table["source_id"] == -1)]
    copies = table["source_id"].value_counts()
    canary = int(train[train["id"].isin(copies.index)].iloc[0]["id"])  # an image with augmented copies
    family = [canary] + table.loc[table["source_id"] == canary, "id"].tolist()
    absurd = 60.0 if workspace.ages(np.array([canary]))[0] < 40 else 20.0
    relabel = {i: absurd for i in family}
    split = parse_forget(workspace.prepared.manifest, f"ids:{canary}")
    base = np.random.default_rng(0).choice(split.retain_train, 1500, replace=False)
    val = workspace.split_ids("val")
    with_canary = np.concatenate([base, family])
    original = workspace.train(with_canary, val, seed=0, role="canary-original", relabel=relabel).model
    retrained = workspace.train(base, val, seed=0, role="canary-retrained").model
    shadows, membership = [], []
    for index in range(8):
        included = index % 2 == 0
        ids = with_canary if included else base
        shadows.append(
            workspace.train(
                ids, val, seed=100 + index, role="canary-shadow", relabel=relabel if included else None
            ).model
        )
        membership.append([included])
    shadow_scores = np.array([[workspace.predict(s, np.array([canary]))[0]] for s in shadows])
    flagged = {
        name: likelihood_ratio_scores(
            workspace.predict(model, np.array([canary])), shadow_scores, np.array(membership)
        )[0]
        for name, model in (("original", original), ("retrained", retrained))
    }
    assert flagged["original"] > 0 > flagged["retrained"]


@needs_weights
def test_feature_injection_weight(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    rows = {r["model"]: r for r in feature_injection(workspace, split, {"finetune": 4, "random_labels": 2})}
    assert abs(rows["original"]["injected_weight"]) > 0.5  # O leans on the injected feature
    assert rows["retrained"]["injected_weight"] == 0.0  # R never sees it non-zero: stays at its zero init
    # Fine-tuning on the retain set gives the feature no gradient (it is 0 there): the weight stays.
    assert rows["finetune"]["injected_weight"] == pytest.approx(rows["original"]["injected_weight"])
    assert rows["random_labels"]["injected_weight"] != pytest.approx(rows["original"]["injected_weight"])


@needs_weights
def test_interclass_confusion_is_learned_and_absent_after_retraining(workspace):
    # Learning a few dozen swapped labels needs training past the early-stopping point (as the canary
    # does); the embeddings are shared with the module's workspace through the cache.
    memorising = Workspace(
        workspace.prepared,
        workspace.model_config,
        fit_config=FitConfig(epochs=20, batch_size=128, lr=2e-3, patience=None),
        cache=workspace.cache,
        progress=False,
    )
    rows = {
        r["model"]: r["confusion"]
        for r in interclass_confusion(memorising, groups=(0, 4), per_group=40, methods={"finetune": 4})
    }
    assert rows["original (trained on swapped labels)"] > rows["retrained"] + 0.1, rows
    # fine-tuning on the retain set (without the swapped images) undoes part of the confusion
    assert rows["finetune"] < rows["original (trained on swapped labels)"]


@needs_weights
def test_a_deterministic_method_gets_no_neurips_score_from_one_original(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    verdicts = Verdicts(workspace, split, VerdictConfig(k=3, shadows=0, resamples=100))
    rows = {r["model"]: r for r in verdicts.evaluate({"ssd": None, "finetune": 2}, False, False)}
    protocols = {(r["model"], r["protocol"]) for r in verdicts.neurips}
    assert protocols == {("ssd", "K originals"), ("finetune", "one original"), ("finetune", "K originals")}
    assert rows["ssd"]["neurips_note"].startswith("deterministic") and "neurips_note" not in rows["finetune"]
    # under one original the K runs of FT differ by their seeds; its K-originals runs come from K originals
    spread = {(r["model"], r["protocol"]): r["spread_ratio"] for r in verdicts.neurips if r["scalar"] == "prediction"}
    assert spread[("finetune", "K originals")] > spread[("finetune", "one original")] > 0
    # every K model's predictions are cached: a second evaluation unlearns nothing
    again = Verdicts(workspace, split, VerdictConfig(k=3, shadows=0, resamples=100))
    again._unlearned = None  # would fail if called for a K model (the single-model rows still unlearn once)
    again._k_runs("finetune", 2, "K originals", range(3))


@needs_weights
def test_k_methods_scores_only_the_chosen_methods_and_keeps_the_others_rows(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    config = VerdictConfig(k=3, shadows=0, resamples=100, k_methods=("finetune",))
    verdicts = Verdicts(workspace, split, config)
    rows = verdicts.evaluate({"finetune": 2, "random_labels": 1}, True, True)
    assert {r["model"] for r in verdicts.neurips} == {ORIGINAL, "finetune", RETRAINED_OTHER_SEED}
    assert [r["model"] for r in rows] == [ORIGINAL, "finetune", "random_labels", RETRAINED_OTHER_SEED]
    # the row left out of the score is the one a K = 0 configuration makes: stored once, found by both
    without = Verdicts(workspace, split, VerdictConfig(k=0, shadows=0, resamples=100))
    assert without._row_path("random_labels", 1) == verdicts._row_path("random_labels", 1)
    assert without._row_path("finetune", 2) != verdicts._row_path("finetune", 2)
    # and every K = 0 row equals a configuration without k_methods at all
    every = Verdicts(workspace, split, VerdictConfig(k=3, shadows=0, resamples=100))
    assert every._row_path("finetune", 2) == verdicts._row_path("finetune", 2)
    assert every._row_path("random_labels", 1) != verdicts._row_path("random_labels", 1)
    with pytest.raises(OlvidoError, match="k_methods 'ct': expected None"):
        VerdictConfig(k_methods="ct")


@needs_weights
def test_a_whole_configuration_stands_for_a_knob_value(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    (row,) = Verdicts(workspace, split, VerdictConfig(k=0, shadows=0)).evaluate(
        {"finetune": {"epochs": 0}}, False, False
    )
    (original,) = Verdicts(workspace, split, VerdictConfig(k=0, shadows=0)).evaluate({}, True, False)
    assert row["value"] == {"epochs": 0}
    # zero epochs of fine-tuning leave the original as it was: the same verdicts
    assert row["forget_mae"] == pytest.approx(original["forget_mae"]) and row["F"] == pytest.approx(original["F"])


def test_verdict_config_rejects_unknown_protocols_and_too_few_models():
    with pytest.raises(OlvidoError, match="expected one or both of one original, K originals"):
        VerdictConfig(protocols=("two originals",))
    with pytest.raises(OlvidoError, match="k 2: expected 0"):
        VerdictConfig(k=2)


@needs_weights
def test_k_models_and_trainings_are_the_same_under_ray_as_here(workspace):
    ray = pytest.importorskip("ray", reason="Ray is installed by `make test`; this must not skip there")
    split = parse_forget(workspace.prepared.manifest, "group:0")
    # one torch thread per job here, as in every Ray task: sums split over two threads round differently
    here = Verdicts(workspace, split, VerdictConfig(k=3, shadows=0), executor=get_executor("local", threads=1))
    jobs = [here.ws.retrained_job(split, seed) for seed in (7, 8)]
    trained_here = here.executor.map(_fit_job, [dict(job, forget=None) for job in jobs], shared=here.ws.for_workers())
    runs_here = dict(here._compute_k_runs("finetune", 2, "K originals", [0, 1]))
    with get_executor("ray", cpus=2, progress=False) as executor:
        there = Verdicts(workspace, split, VerdictConfig(k=3, shadows=0), executor=executor)
        trained_there = executor.map(_fit_job, [dict(job, forget=None) for job in jobs], shared=there.ws.for_workers())
        runs_there = dict(there._compute_k_runs("finetune", 2, "K originals", [0, 1]))  # in finishing order
    assert not ray.is_initialized()
    for (state_here, reports_here), (state_there, reports_there) in zip(trained_here, trained_there):
        assert all(torch.equal(state_here[name], state_there[name]) for name in state_here)
        assert [r["best_epoch"] for r in reports_here] == [r["best_epoch"] for r in reports_there]
    assert runs_here.keys() == runs_there.keys() == {0, 1}
    for seed, mine in runs_here.items():
        theirs = runs_there[seed]
        assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    assert not np.array_equal(runs_here[0]["forget_pred"], runs_here[1]["forget_pred"])


def test_leave_one_out_attack_catches_planted_canaries_and_nothing_else():
    rng = np.random.default_rng(3)
    membership = rng.random((16, 200)) < 0.5
    forgotten = rng.normal(40, 8, 200) + rng.normal(0, 1, (16, 200))  # membership leaves no trace
    clean = leave_one_out_attack(forgotten, membership)
    assert abs(clean["auc"] - 0.5) < 0.06 and clean["tpr_at_0.01_fpr"] < 0.04
    canaries = forgotten.copy()
    canaries[:, :20] += 6 * membership[:, :20]  # 20 examples remembered: 6 sd higher wherever trained on
    caught = leave_one_out_attack(canaries, membership)
    assert caught["tpr_at_0.01_fpr"] > 0.06 and caught["auc"] > clean["auc"] + 0.02
    assert leave_one_out_attack(forgotten + 6 * membership, membership)["auc"] > 0.95  # everything remembered
    with pytest.raises(ValueError, match="expected scores and membership of one"):
        leave_one_out_attack(forgotten, membership[:, :5])


@needs_weights
def test_ulira_sees_nothing_in_retrained_models_and_resumes_from_its_cache(workspace):
    split = parse_forget(workspace.prepared.manifest, "group:0")
    verdicts = Verdicts(workspace, split, VerdictConfig(k=0, shadows=0, ulira_shadows=6))
    _, membership, halves = verdicts._ulira_shadows
    assert membership.shape == (6, len(split.forget)) and 0.3 < membership.mean() < 0.7
    assert all(set(h.forget) == set(split.forget[m]) for h, m in zip(halves, membership))
    sanity = verdicts.ulira(RETRAINED_OTHER_SEED)  # never trained on either half: nothing to find
    assert abs(sanity["ulira_auc"] - 0.5) < 0.1, sanity
    first = verdicts.ulira("finetune", 1)
    assert 0 <= first["ulira_auc"] <= 1
    again = Verdicts(workspace, split, VerdictConfig(k=0, shadows=0, ulira_shadows=6))
    again.executor = None  # any unlearning run would fail: the shadows' runs come from the cache
    assert again.ulira("finetune", 1) == first
