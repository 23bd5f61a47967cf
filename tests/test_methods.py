"""The unlearning API and every registered method.

Contract tests run over the whole registry (``list_methods()``), so a method is covered the day it is
registered; behavioural tests check that each new method forgets on a tiny problem where forgetting is
measurable (``helpers.StripesProblem``).
"""

import json
from dataclasses import fields

import numpy as np
import pytest
import torch

from olvido.data import parse_forget
from olvido.errors import OlvidoError
from olvido.methods import METHODS, config_for, get_method, list_methods, make_config, unlearn
from olvido.methods.finetune import FinetuneConfig
from olvido.methods.random_labels import THESIS_OFFSETS, RandomLabelsConfig, ShiftedLabels
from olvido.methods.retrain import RetrainConfig
from olvido.metrics import forgetting
from olvido.models.ensemble import Ensemble
from olvido.training import ArrayDataset, ConcatSamples, FitConfig, make_loader, predict

from helpers import FAST_FIT, StripesNet, StripesProblem, Untouchable, needs_weights
from toy import MOVED_BOUND, TOY_SETTINGS, behaviour, retain_bound, run_toy

ALL = list_methods()
THESIS_METHODS = ("finetune", "random_labels")
NEW_METHODS = ("reset_distill", "scrub", "neggrad_plus", "msg", "ct", "blindspot", "gaussian_amnesiac")
IMPORTANCE_METHODS = ("salun", "gradmask", "fisher", "ssd", "lfssd", "assd", "l1_sparse", "activation_reset")
# Short runs for the contract tests (each method's own defaults otherwise).
QUICK = {"epochs": 1, "batch_size": 64}


@pytest.fixture(scope="module")
def problem() -> StripesProblem:
    return StripesProblem()


def _run(name, model, problem, seed=0, **values):
    return run_toy(name, problem, seed, model=model, **{**QUICK, **values})


def _predictions(model, problem):
    return predict(model, problem.dataset("train"))


# -- contract, over the registry ------------------------------------------------------------------------
def test_the_registry_holds_the_thesis_and_the_new_methods():
    assert set(THESIS_METHODS + NEW_METHODS + IMPORTANCE_METHODS + ("retrain",)) <= set(ALL)
    # every new method has a behavioural test
    assert set(NEW_METHODS + IMPORTANCE_METHODS) <= set(TOY_SETTINGS)
    with pytest.raises(OlvidoError, match="expected one of"):
        get_method("amnesia")


@pytest.mark.parametrize("name", ALL)
def test_spec_is_complete_and_describable(name):
    spec = get_method(name)
    assert spec.label and spec.summary and spec.reference
    assert spec.knob.name in {f.name for f in fields(spec.config_class)}
    for value in spec.knob.values:  # every sweep value makes a valid config
        assert getattr(make_config(name, **{spec.knob.name: value}), spec.knob.name) == value
    assert set(spec.scopes) <= {"head", "last", "all"} and spec.needs <= {
        "retain",
        "forget",
        "val",
        "teacher",
        "new_model",
        "holdout",
    }
    assert json.loads(json.dumps(spec.describe()))["name"] == name


@pytest.mark.parametrize("name", ALL)
def test_an_unknown_config_field_is_a_one_line_error(name):
    with pytest.raises(OlvidoError, match=r"unknown config field 'learning_rate'; expected some of .*epochs") as error:
        make_config(name, learning_rate=0.1)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", ALL)
def test_the_callers_model_is_untouched_and_the_result_is_timed(name, problem):
    model = problem.original
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _run(name, model, problem)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert result.seconds > 0 and result.method == name and not result.model.training


@pytest.mark.parametrize("name", ALL)
def test_the_same_seed_gives_the_same_predictions(name, problem):
    first = _predictions(_run(name, problem.original, problem, seed=3).model, problem)
    second = _predictions(_run(name, problem.original, problem, seed=3).model, problem)
    np.testing.assert_array_equal(first, second)
    if get_method(name).stochastic:
        other = _predictions(_run(name, problem.original, problem, seed=4).model, problem)
        assert not np.array_equal(first, other), "a stochastic method gave identical results for two seeds"


@pytest.mark.parametrize("name", ALL)
def test_predictions_are_finite_and_inside_the_label_range(name, problem):
    predictions = _predictions(_run(name, problem.original, problem).model, problem)
    assert predictions.shape == (len(problem.ids["train"]),) and np.isfinite(predictions).all()
    assert predictions.min() >= 20 and predictions.max() <= 60


@pytest.mark.parametrize("name", ALL)
def test_it_works_on_an_ensemble_member_by_member(name, problem):
    ensemble = Ensemble([problem.original, problem.retrained])
    result = _run(name, ensemble, problem, seed=2)
    assert isinstance(result.model, Ensemble) and len(result.model.members) == 2
    alone = _run(name, problem.retrained, problem, seed=2001)  # member 1 of seed 2 uses seed 2001
    np.testing.assert_allclose(
        _predictions(result.model.members[1], problem), _predictions(alone.model, problem), rtol=0, atol=1e-5
    )


@pytest.mark.parametrize("name", ALL)
def test_it_trains_only_what_its_scope_lets_it_train(name, problem):
    model = StripesNet(0)
    model.load_state_dict(problem.original.state_dict())
    frozen = model.head[0]  # as if this layer belonged to the frozen part of a scope
    for parameter in frozen.parameters():
        parameter.requires_grad_(False)
    before = {k: v.clone() for k, v in frozen.state_dict().items()}
    result = _run(name, model, problem)
    unlearned = result.model.head[0] if name != "retrain" else None
    if unlearned is not None:
        for key, value in unlearned.state_dict().items():
            torch.testing.assert_close(value.cpu(), before[key], rtol=0, atol=0)
        assert not all(p.requires_grad for p in result.model.head[0].parameters())


@pytest.mark.parametrize("name", ALL)
def test_undeclared_data_are_never_read(name, problem):
    spec = get_method(name)
    forget = problem.dataset("forget") if "forget" in spec.needs else Untouchable()
    val = problem.dataset("retain_val") if "val" in spec.needs else Untouchable()
    config = make_config(name, **QUICK)
    unlearn(
        name,
        problem.original,
        problem.dataset("retain"),
        forget,
        val,
        config,
        new_model=StripesNet,
        label_range=(20.0, 60.0),
    )


def test_reading_an_undeclared_set_is_a_clear_error(problem):
    from olvido.methods.base import UnlearnConfig, _Unavailable

    assert isinstance(UnlearnConfig(), UnlearnConfig)
    with pytest.raises(OlvidoError, match="read the forget set without declaring 'forget'"):
        len(_Unavailable("finetune", "forget"))


# -- behaviour: each new method forgets on the stripes problem (settings and bounds in toy.py) ----------------
def test_the_problem_separates_the_original_from_the_retrained_model(problem):
    original, retrained = problem.mae(problem.original, "forget"), problem.mae(problem.retrained, "forget")
    assert retrained > 2.5 * original
    assert problem.mae(problem.retrained, "retain") < 1.2 * problem.mae(problem.original, "retain")


@pytest.mark.parametrize("name", sorted(TOY_SETTINGS))
def test_the_method_moves_forget_errors_half_way_to_retraining_and_keeps_retain_accuracy(name, problem):
    result = behaviour(name, problem)
    assert result.moved >= MOVED_BOUND, (
        f"forget MAE moved {result.moved:.2f} of the way from O ({result.original_forget:.2f}) "
        f"to R ({result.retrained_forget:.2f})"
    )
    assert result.retain_ratio <= retain_bound(name), f"retain MAE x{result.retain_ratio:.3f} of O's"


# -- the API -------------------------------------------------------------------------------------------------
def test_config_for_keeps_a_methods_own_recipe_unless_it_continues_the_training_recipe():
    recipe = FitConfig(lr=0.123, batch_size=77)
    assert (config_for("finetune", recipe).lr, config_for("finetune", recipe).batch_size) == (0.123, 77)
    scrub = config_for("scrub", recipe)
    assert (scrub.lr, scrub.batch_size) == (make_config("scrub").lr, make_config("scrub").batch_size)
    assert config_for("finetune", recipe, 0).epochs == 0  # 0 epochs is a value, not "the default"
    assert config_for("finetune", recipe).epochs == FinetuneConfig().epochs
    tuned = config_for("finetune", recipe, {"epochs": 3, "lr": 2e-5}, seed=4)  # a whole (tuned) configuration
    assert (tuned.epochs, tuned.lr, tuned.batch_size, tuned.seed) == (3, 2e-5, 77, 4)


def test_configs_reject_invalid_values_in_one_line():
    with pytest.raises(OlvidoError, match="epochs -1: expected a whole number >= 0"):
        FinetuneConfig(epochs=-1)
    with pytest.raises(OlvidoError, match="optimizer 'adamax'"):
        FinetuneConfig(optimizer="adamax")
    with pytest.raises(OlvidoError, match="takes a FinetuneConfig"):
        unlearn(
            "finetune",
            StripesNet(),
            ArrayDataset(torch.zeros(4, 1, 8, 8), torch.ones(4)),
            Untouchable(),
            Untouchable(),
            RandomLabelsConfig(),
        )


def test_zero_epochs_of_finetuning_return_the_original(problem):
    result = _run("finetune", problem.original, problem, epochs=0)
    np.testing.assert_array_equal(_predictions(result.model, problem), _predictions(problem.original, problem))


def test_methods_accept_dataloaders_as_in_the_neurips_api(problem):
    retain, forget, val = (
        make_loader(problem.dataset(p), 16, shuffle=True) for p in ("retain", "forget", "retain_val")
    )
    for name in ("finetune", "random_labels", "neggrad_plus"):
        model = unlearn(name, problem.original, retain, forget, val, make_config(name, epochs=1)).model
        assert predict(model, val).shape == (len(problem.ids["retain_val"]),)


def test_retrain_starts_from_the_factory_not_from_the_original(problem):
    result = unlearn(
        "retrain",
        problem.original,
        problem.dataset("retain"),
        Untouchable(),
        problem.dataset("retain_val"),
        RetrainConfig(epochs=1, patience=None),
        new_model=StripesNet,
    )
    start = StripesNet(0)
    distance = lambda a, b: float((a.head[2].weight.cpu() - b.head[2].weight.cpu()).abs().max().detach())  # noqa: E731
    assert distance(result.model, start) < distance(result.model, problem.original)


def test_the_default_factory_reinitialises_a_foreign_model(problem):
    result = unlearn(
        "retrain",
        problem.original,
        problem.dataset("retain"),
        Untouchable(),
        problem.dataset("retain_val"),
        RetrainConfig(epochs=1, patience=None),
    )
    assert not torch.equal(result.model.head[2].weight.cpu(), problem.original.head[2].weight)


def test_random_label_offsets_have_exactly_the_documented_distribution():
    n = 40_000
    base = ArrayDataset(torch.zeros(n, 1), torch.full((n,), 40.0))
    shifted = ShiftedLabels(base, seed=3)
    _, labels = shifted.__getitems__(list(range(n)))
    offsets, counts = np.unique((labels - 40).numpy(), return_counts=True)
    assert offsets.tolist() == list(THESIS_OFFSETS)
    assert counts.min() > 0.95 * n / 8 and counts.max() < 1.05 * n / 8
    # redrawn every time the sample is seen
    _, again = shifted.__getitems__(list(range(n)))
    assert (again != labels).float().mean() > 0.8


def test_random_labels_are_clipped_to_20_60_and_retain_labels_untouched():
    retain = ArrayDataset(torch.zeros(5, 1), torch.tensor([20.0, 30.0, 40.0, 50.0, 60.0]))
    forget = ArrayDataset(torch.zeros(200, 1), torch.tensor([21.0, 59.0] * 100))
    data = ConcatSamples([retain, ShiftedLabels(forget, seed=0)])
    for _ in range(5):
        _, y = data.__getitems__(list(range(len(data))))
        assert y[:5].tolist() == [20.0, 30.0, 40.0, 50.0, 60.0]
        assert y[5:].min() >= 20 and y[5:].max() <= 60
        assert ((y[5::2] == 20) | (y[5::2] >= 24)).all()  # 21 - 3..6 clipped at 20, or 21 + 3..6
    _, single = data[7]
    assert 20 <= float(single) <= 60


def test_concat_samples_keeps_the_order_of_mixed_batches():
    a = ArrayDataset(torch.arange(3.0).view(3, 1), torch.arange(3.0))
    b = ArrayDataset(torch.arange(3.0, 8.0).view(5, 1), torch.arange(3.0, 8.0))
    data = ConcatSamples([a, b])
    x, y = data.__getitems__([7, 0, 4, 2, 3])
    assert y.tolist() == [7.0, 0.0, 4.0, 2.0, 3.0] and x.view(-1).tolist() == y.tolist()


@needs_weights
def test_finetune_moves_forget_errors_toward_the_retrained_models(prepared, tmp_path, share_features):
    from olvido.experiments.workspace import ModelConfig, Workspace

    ws = Workspace(
        prepared,
        ModelConfig(init="imagenet", ensemble=1, mirror=False),
        fit_config=FAST_FIT,
        cache=share_features(tmp_path),
        progress=False,
    )
    split = parse_forget(prepared.manifest, "group:0")
    original, retrained = ws.original(0).model, ws.retrained(split, 0).model
    tuned = ws.unlearn("finetune", original, split, 8).model
    y = ws.ages(split.forget)
    prediction = {
        name: ws.predict(model, split.forget) for name, model in [("O", original), ("R", retrained), ("FT", tuned)]
    }
    gap = {name: np.abs(np.abs(y - prediction[name]) - np.abs(y - prediction["R"])).mean() for name in ("O", "FT")}
    assert gap["FT"] < gap["O"]
    assert forgetting(y, prediction["FT"], prediction["R"]) > forgetting(y, prediction["O"], prediction["R"])


def test_every_registered_method_is_in_the_package_namespace():
    assert set(METHODS) == set(ALL)
