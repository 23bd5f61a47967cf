import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from olvido.data import parse_forget
from olvido.methods import METHODS, unlearn
from olvido.methods.finetune import FinetuneConfig
from olvido.methods.random_labels import THESIS_OFFSETS, RandomLabelsConfig, ShiftedLabels
from olvido.methods.retrain import RetrainConfig
from olvido.metrics import forgetting
from olvido.models.ensemble import Ensemble
from olvido.storage import OlvidoError
from olvido.training import ArrayDataset, ConcatSamples, FitConfig, make_loader, predict

from test_models import FAST_FIT, needs_weights


def _toy(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    return ArrayDataset(x, (x[:, 0] * 5 + 40).clamp(20, 60))


def _toy_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1), torch.nn.Flatten(0))


class Untouchable(Dataset):
    """A forget set that fails the test if anything reads it."""

    def __len__(self):
        return 10

    def __getitem__(self, index):
        raise AssertionError("the forget set was read")

    __getitems__ = __getitem__


def test_registry_lists_the_thesis_methods_and_rejects_unknown_names():
    assert {"retrain", "finetune", "random_labels"} <= set(METHODS)
    with pytest.raises(OlvidoError, match="expected one of"):
        unlearn("amnesia", _toy_model(), _toy(), _toy(), _toy())
    with pytest.raises(OlvidoError, match="takes a FinetuneConfig"):
        unlearn("finetune", _toy_model(), _toy(), _toy(), _toy(), RandomLabelsConfig())


def test_unlearn_never_modifies_the_callers_model_and_is_timed():
    model = _toy_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = unlearn("finetune", model, _toy(), Untouchable(), _toy(seed=1), FinetuneConfig(epochs=2))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert result.seconds > 0 and result.method == "finetune"
    assert any(not torch.equal(v, before[k]) for k, v in result.model.state_dict().items())


def test_finetune_and_retrain_never_read_the_forget_set():
    unlearn("finetune", _toy_model(), _toy(), Untouchable(), _toy(seed=1), FinetuneConfig(epochs=1))
    unlearn("retrain", _toy_model(), _toy(), Untouchable(), _toy(seed=1), RetrainConfig(epochs=3, init=_toy_model))


def test_methods_accept_dataloaders_as_in_the_neurips_api():
    retain, forget, val = (make_loader(_toy(seed=s), 16, shuffle=True) for s in (0, 1, 2))
    for name, config in [("finetune", FinetuneConfig(epochs=1)), ("random_labels", RandomLabelsConfig(epochs=1))]:
        model = unlearn(name, _toy_model(), retain, forget, val, config).model
        assert predict(model, val).shape == (64,)


def test_retrain_uses_the_factory_and_ignores_the_original_weights():
    original = _toy_model(seed=5)
    fresh = unlearn("retrain", original, _toy(), Untouchable(), _toy(seed=1), RetrainConfig(epochs=1, patience=None, init=_toy_model))
    untrained = _toy_model(seed=0)
    # one epoch from the factory's weights moves away from them, but never starts from the original's
    assert not torch.equal(fresh.model[0].weight, original[0].weight)
    assert (fresh.model[0].weight - untrained[0].weight).abs().max() < (fresh.model[0].weight - original[0].weight).abs().max()


def test_ensembles_are_unlearned_member_by_member():
    ensemble = Ensemble([_toy_model(0), _toy_model(1)])
    result = unlearn("finetune", ensemble, _toy(), Untouchable(), _toy(seed=1), FinetuneConfig(epochs=1))
    assert isinstance(result.model, Ensemble) and len(result.model.members) == 2
    single = unlearn("finetune", _toy_model(1), _toy(), Untouchable(), _toy(seed=1), FinetuneConfig(epochs=1, seed=1))
    # member 1 of seed 0 uses seed 1, like a single model unlearned with seed 1
    torch.testing.assert_close(result.model.members[1].state_dict(), single.model.state_dict())


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
def test_finetune_moves_forget_errors_toward_the_retrained_models(prepared, tmp_path):
    from olvido.experiments.workspace import ModelConfig, Workspace

    ws = Workspace(prepared, ModelConfig(init="imagenet", ensemble=1), fit_config=FAST_FIT, cache=tmp_path, progress=False)
    split = parse_forget(prepared.manifest, "group:0")
    original, retrained = ws.original(0).model, ws.retrained(split, 0).model
    tuned = unlearn("finetune", original, ws.dataset(split.retain_train), ws.dataset(split.forget), ws.dataset(split.retain_val), FinetuneConfig(epochs=8)).model
    y = ws.ages(split.forget)
    prediction = {name: ws.predict(model, split.forget) for name, model in [("O", original), ("R", retrained), ("FT", tuned)]}
    gap = {name: np.abs(np.abs(y - prediction[name]) - np.abs(y - prediction["R"])).mean() for name in ("O", "FT")}
    assert gap["FT"] < gap["O"]
    assert forgetting(y, prediction["FT"], prediction["R"]) > forgetting(y, prediction["O"], prediction["R"])
