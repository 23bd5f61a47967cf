"""Per-sample importances (``olvido.methods.importance``) and the weight edits of Fisher forgetting and SSD,
checked against values computed by hand."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.methods import make_config
from olvido.methods.base import fixed_subset
from olvido.methods.fisher import fisher_variances
from olvido.methods.importance import importances, mixture
from olvido.methods.ssd import adaptive_alpha, dampen
from olvido.training import ArrayDataset, make_loader

from helpers import Line, StripesNet


def test_importances_of_a_linear_model_are_the_mean_squared_per_sample_gradients():
    # f = 2 x1 - x2 + 1; df/dw = x, df/db = 1
    model = Line([2.0, -1.0], 1.0)
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, -1.0]])
    y = torch.tensor([4.0, -2.0, 8.0])  # f = 3, -1, 8: errors -1, 1, 0
    data = ArrayDataset(x, y)
    fisher = importances(model, data, "fisher", batch_size=2)  # two loads: the mean spans them
    torch.testing.assert_close(fisher["linear.weight"], torch.tensor([[(1 + 0 + 9) / 3, (0 + 4 + 1) / 3]]))
    torch.testing.assert_close(fisher["linear.bias"], torch.tensor([1.0]))
    # squared error: d(f - y)^2 = 2 e x, squared: 4 e^2 x^2
    squared = importances(model, data, "squared_error")
    torch.testing.assert_close(squared["linear.weight"], torch.tensor([[4 * 1 / 3, 4 * 4 / 3]]))
    torch.testing.assert_close(squared["linear.bias"], torch.tensor([4 * 2 / 3]))
    # LFSSD's label-free output, the authors' estimator: mean over batches of |d mean_batch f / dtheta|;
    # batches of 2: {x1, x2} and {x3}: |(1 + 0) / 2| and 3, |(0 + 2) / 2| and |-1|; the bias 1 in each
    output = importances(model, data, "output", estimator="batch_abs", batch_size=2)
    torch.testing.assert_close(output["linear.weight"], torch.tensor([[(0.5 + 3) / 2, (1 + 1) / 2]]))
    torch.testing.assert_close(output["linear.bias"], torch.tensor([1.0]))
    # per sample, "output" is the Fisher: the weight of every sample's gradient is 1, whatever f is
    torch.testing.assert_close(importances(model, data, "output")["linear.weight"], fisher["linear.weight"])
    with pytest.raises(ValueError, match="quantity 'hessian'"):
        importances(model, data, "hessian")


def test_importances_stay_large_where_the_batch_l1_gradient_cancels():
    model = Line([1.0, 1.0], 0.0)
    x = torch.tensor([[2.0, 1.0], [2.0, 1.0], [1.0, 3.0], [1.0, 3.0]])
    y = model(x).detach() + torch.tensor([1.0, -1.0, 2.0, -2.0])  # each input once above, once below
    loss = (model(x) - y).abs().mean()
    loss.backward()
    batch = torch.cat([model.linear.weight.grad.flatten(), model.linear.bias.grad])
    assert batch.abs().max() < 1e-6  # what SSD's batch-gradient importance would square: nothing
    fisher = importances(model, ArrayDataset(x, y), "fisher")
    torch.testing.assert_close(fisher["linear.weight"], torch.tensor([[(4 + 4 + 1 + 1) / 4, (1 + 1 + 9 + 9) / 4]]))
    squared = importances(model, ArrayDataset(x, y), "squared_error")
    torch.testing.assert_close(squared["linear.bias"], torch.tensor([4 * (1 + 1 + 4 + 4) / 4]))


def test_random_signs_estimate_the_same_mean_without_the_cancellation():
    model = Line([1.0, 1.0], 0.0)
    x = torch.tensor([[2.0, 1.0], [2.0, 1.0], [1.0, 3.0], [1.0, 3.0]])
    data = ArrayDataset(x, model(x).detach() + torch.tensor([1.0, -1.0, 2.0, -2.0]))
    exact = importances(model, data, "squared_error")
    # a batch of one: s^2 = 1, the estimate is exact
    single = importances(model, data, "squared_error", estimator="random_sign", batch_size=1, seed=5)
    for name in exact:
        torch.testing.assert_close(single[name], exact[name])
    # one batch of four, averaged over sign draws: unbiased (one draw has a relative sd of about 1)
    options = dict(estimator="random_sign", batch_size=4)
    draws = [importances(model, data, "squared_error", seed=seed, **options) for seed in range(1000)]
    for name in exact:
        mean = torch.stack([d[name] for d in draws]).mean(0)
        torch.testing.assert_close(mean, exact[name], rtol=0.15, atol=0)
    with pytest.raises(ValueError, match="estimator 'mean_batch'"):
        importances(model, data, estimator="mean_batch")
    with pytest.raises(OlvidoError, match="estimator 'mean_batch': expected one of per_sample, random_sign, batch_abs"):
        make_config("ssd", estimator="mean_batch")


def test_vmap_and_one_backward_per_sample_agree_on_a_batchnorm_model_left_as_it_was():
    torch.manual_seed(0)
    model = StripesNet(0)
    for parameter in model.head[0].parameters():  # frozen: not measured
        parameter.requires_grad_(False)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = ArrayDataset(torch.randn(20, 1, 8, 8), torch.rand(20) * 40 + 20)
    batched = importances(model, data, "squared_error", batch_size=8)
    looped = importances(model, data, "squared_error", batch_size=8, vectorize=False)
    assert set(batched) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert "head.0.weight" not in batched
    for name in batched:
        torch.testing.assert_close(batched[name], looped[name], rtol=1e-4, atol=1e-6)
    assert model.training  # the mode is restored; BatchNorm statistics did not move
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


def test_the_importance_of_a_union_is_the_size_weighted_mixture_of_its_parts():
    model = Line([0.5, -2.0], 3.0)
    x, y = torch.randn(10, 2), torch.randn(10)
    whole = importances(model, ArrayDataset(x, y), "squared_error")
    parts = [(importances(model, ArrayDataset(x[:3], y[:3]), "squared_error"), 3)]
    parts.append((importances(model, ArrayDataset(x[3:], y[3:]), "squared_error"), 7))
    for name, value in mixture(parts).items():
        torch.testing.assert_close(value, whole[name])


def test_ssd_dampens_only_the_selected_weights_by_lambda_full_over_forget_capped_at_one():
    model = Line([1.0, 1.0, 1.0], 1.0)
    forget = {"linear.weight": torch.tensor([[8.0, 2.0, 6.0]]), "linear.bias": torch.tensor([1.0])}
    full = {"linear.weight": torch.tensor([[2.0, 2.0, 1.0]]), "linear.bias": torch.tensor([1.0])}
    # alpha 3: selected where forget > 3 full, i.e. weights 0 (8 > 6) and 2 (6 > 3), not 1 or the bias
    assert dampen(model, forget, full, alpha=3.0, dampening=1.0) == 2
    torch.testing.assert_close(model.linear.weight, torch.tensor([[2 / 8, 1.0, 1 / 6]]))
    torch.testing.assert_close(model.linear.bias, torch.tensor([1.0]))
    # lambda 5: 5 x 2/8 > 1 stays 1 (never enlarged), 5 x 1/6 dampens
    again = Line([1.0, 1.0, 1.0], 1.0)
    dampen(again, forget, full, alpha=3.0, dampening=5.0)
    torch.testing.assert_close(again.linear.weight, torch.tensor([[1.0, 1.0, 5 / 6]]))


def test_assd_takes_alpha_at_the_percentile_set_by_the_forget_share():
    forget = {"a": torch.arange(1.0, 101.0), "b": torch.tensor([0.0, 1.0])}
    full = {"a": torch.ones(100), "b": torch.tensor([0.0, 0.0])}  # 0/0 and 1/0 are left out
    rho = 0.2
    expected = np.percentile(np.arange(1.0, 101.0), 100 - math.log(1 + 100 * rho))
    assert adaptive_alpha(forget, full, rho) == pytest.approx(expected)
    assert 96 < adaptive_alpha(forget, full, rho) < 98


def close(value, expected):
    torch.testing.assert_close(value, torch.tensor(expected), rtol=1e-5, atol=0)


def test_fisher_variances_follow_the_original_clamps_unit_means_and_factors():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    information = {
        "0.weight": torch.tensor([[1.0, 0.0], [0.5, 0.25]]),  # 1/0 is clamped at 1e3
        "0.bias": torch.tensor([2.0, 0.0]),
        "2.weight": torch.tensor([[0.0, 4.0]]),  # the output layer: clamped at 1e2, then x 10
        "2.bias": torch.tensor([0.1]),
    }
    variances = fisher_variances(model, information, noise=1e-3)
    close(variances["0.weight"], [[1e-3 * (1 + 1e3) / 2] * 2, [1e-3 * (2 + 4) / 2] * 2])  # mean per output unit
    close(variances["0.bias"], [1e-3 * 0.5 * 10, 1e-3 * 1e3 * 10])  # one-dimensional: x 10
    close(variances["2.weight"], [[1e-3 * (1e2 + 0.25) / 2 * 10] * 2])
    close(variances["2.bias"], [1e-3 * 10 * 10])


def test_a_fixed_subset_depends_on_the_data_and_its_seed_only():
    data = ArrayDataset(torch.arange(10.0).reshape(10, 1), torch.arange(10.0))
    assert fixed_subset(data, None, 0) is data and fixed_subset(data, 10, 0) is data
    first, again = fixed_subset(data, 4, 3), fixed_subset(data, 4, 3)
    assert len(first) == 4 and first.indices == again.indices == sorted(first.indices)
    assert fixed_subset(data, 4, 4).indices != first.indices
    assert fixed_subset(make_loader(data, 2), 4, 3).indices == first.indices  # a loader's dataset is subset
    with pytest.raises(OlvidoError, match="max_samples 0: expected None or a whole number >= 1"):
        make_config("ssd", max_samples=0)
    with pytest.raises(OlvidoError, match="saliency_samples 2.5: expected None or a whole number >= 1"):
        make_config("salun", saliency_samples=2.5)
