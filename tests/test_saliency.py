"""The saliency mask of SalUn and GradMask (``olvido.methods.saliency``)."""

import torch
from torch import nn

from olvido.methods.saliency import masked_update_hooks, saliency_mask
from olvido.training import ArrayDataset, FitConfig, fit


def test_the_mask_finds_a_weight_whose_l1_gradients_cancel_and_only_masked_weights_move():
    # f(x) = w0 x0 + w1 x1. Two forget samples with errors +1 and -1 and the same x0 = 3: the per-sample L1
    # gradients of w0 are +3 and -3, so the summed (batch) L1 gradient of w0 is 0 although the predictions
    # depend on w0 most; w1 (x1 = +-0.1) has a small summed gradient, 0.2, that does not cancel.
    model = nn.Sequential(nn.Linear(2, 1, bias=False), nn.Flatten(0))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 0.5]]))
    x = torch.tensor([[3.0, 0.1], [3.0, -0.1]])
    with torch.no_grad():
        y = model(x) + torch.tensor([-1.0, 1.0])  # errors f - y = +1 and -1
    forget = ArrayDataset(x, y)

    for loss in ((model(x) - y).abs().sum(), (model(x) - y).pow(2).sum() / 2):  # L1, and squared error
        (batch_gradient,) = torch.autograd.grad(loss, model[0].weight)
        assert batch_gradient[0, 0].abs() < 1e-5 < batch_gradient[0, 1].abs()  # a batch-gradient mask picks w1

    mask = saliency_mask(model, forget, ratio=0.5, batch_size=2, device="cpu")
    assert mask[model[0].weight].tolist() == [[True, False]]  # the per-sample mask picks w0

    # Fine-tuning under the mask hooks, with momentum and weight decay (which act inside the optimiser step,
    # after the gradient mask): w0 moves, w1 stays exactly where it was.
    data = ArrayDataset(torch.randn(32, 2), torch.randn(32))
    config = FitConfig(epochs=3, batch_size=8, lr=0.1, optimizer="sgd", weight_decay=0.1, patience=None)
    fit(model, data, None, config, hooks=masked_update_hooks(mask))
    assert model[0].weight[0, 0] != 1.0 and model[0].weight[0, 1] == 0.5
