"""Hand-built checks of two issue-10 methods: activation_reset ranks and re-draws the right unit, and
l1_sparse's penalty decays as documented."""

import pytest
import torch
from torch import nn

from olvido.methods import l1_sparse as l1_module
from olvido.methods import make_config, unlearn
from olvido.methods.activation_reset import top_units, unit_scores
from olvido.methods.layers import hidden_layers
from olvido.training import ArrayDataset

from helpers import StripesNet, StripesProblem


class TwoInputs(nn.Module):
    """Four hidden units (Linear -> BatchNorm -> ReLU) and a linear output, predicting years."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(2, 4)
        self.norm = nn.BatchNorm1d(4)
        self.out = nn.Linear(4, 1)
        with torch.no_grad():
            # unit 0 fires for forget inputs (x0 ~ 1) only, unit 1 for retain inputs (x1 ~ 1) only,
            # units 2 and 3 respond alike to both
            self.hidden.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 3.0], [0.1, 0.1], [-0.1, -0.1]]))
            self.hidden.bias.copy_(torch.tensor([-1.5, -1.5, 0.0, 0.0]))
            self.norm.running_mean.fill_(0.5)
            self.out.weight.fill_(1.0)
            self.out.bias.fill_(40.0)

    def forward(self, x):
        return self.out(torch.relu(self.norm(self.hidden(x)))).squeeze(-1)


def _two_sets(n=64):
    generator = torch.Generator().manual_seed(0)
    noise = lambda: 0.05 * torch.randn(n, 2, generator=generator)  # noqa: E731
    forget = ArrayDataset(torch.tensor([1.0, 0.0]) + noise(), torch.full((n,), 25.0))
    retain = ArrayDataset(torch.tensor([0.0, 1.0]) + noise(), torch.full((n,), 45.0))
    return retain, forget


def test_the_unit_only_the_forget_set_fires_is_ranked_first_and_only_its_incoming_weights_are_redrawn():
    model = TwoInputs()
    retain, forget = _two_sets()
    scores = unit_scores(model, hidden_layers(model), retain, forget, 16, torch.device("cpu"))
    assert len(scores) == 1 and scores[0].argmax() == 0 and scores[0].argmin() == 1
    assert scores[0][0] > 10 and abs(scores[0][2]) < 1  # forget-only unit vs a unit both sets drive alike
    assert [u.tolist() for u in top_units(scores, 0.25)] == [[0]]

    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = make_config("activation_reset", epochs=0, fraction=0.25, seed=1)
    result = unlearn("activation_reset", model, retain, forget, retain, config, label_range=(20.0, 60.0)).model
    after = {k: v.cpu() for k, v in result.state_dict().items()}  # the result stays on the device it ran on
    assert not torch.equal(after["hidden.weight"][0], before["hidden.weight"][0])
    assert after["hidden.bias"][0] != before["hidden.bias"][0]
    torch.testing.assert_close(after["hidden.weight"][1:], before["hidden.weight"][1:], rtol=0, atol=0)
    torch.testing.assert_close(after["hidden.bias"][1:], before["hidden.bias"][1:], rtol=0, atol=0)
    for key in ("out.weight", "out.bias", "norm.weight", "norm.bias", "norm.running_mean", "norm.running_var"):
        torch.testing.assert_close(after[key], before[key], rtol=0, atol=0)  # outgoing weights, BatchNorm kept
    # re-drawn from the layer's own initialiser: uniform within 1 / sqrt(fan_in)
    assert after["hidden.weight"][0].abs().max() <= 2**-0.5


def test_the_l1_penalty_weight_decays_linearly_then_stops(monkeypatch):
    assert l1_module.l1_coefficient(2.0, 1, 10, 2) == 2.0  # first epoch: alpha
    assert l1_module.l1_coefficient(2.0, 8, 10, 2) == pytest.approx(2.0 / 8)  # last penalised epoch: alpha / P
    assert l1_module.l1_coefficient(2.0, 9, 10, 2) == l1_module.l1_coefficient(2.0, 10, 10, 2) == 0.0
    assert l1_module.l1_coefficient(2.0, 1, 1, 2) == 2.0  # a one-epoch run is still penalised

    used = []
    original = l1_module.l1_coefficient
    monkeypatch.setattr(l1_module, "l1_coefficient", lambda *a: used.append(original(*a)) or used[-1])
    problem = StripesProblem(n=200)
    config = make_config("l1_sparse", epochs=5, no_l1_epochs=1, alpha=0.8, batch_size=50, seed=0)
    unlearn(
        "l1_sparse",
        StripesNet(0),
        problem.dataset("retain"),
        problem.dataset("forget"),
        problem.dataset("retain_val"),
        config,
        label_range=(20.0, 60.0),
    )
    steps = -(-len(problem.ids["retain"]) // 50)
    assert len(used) == 5 * steps  # one lookup per optimiser step
    assert used[0] == 0.8 and used[-steps - 1] == pytest.approx(0.8 / 4) and used[-1] == 0.0
    assert all(a >= b for a, b in zip(used, used[1:]))  # never grows
