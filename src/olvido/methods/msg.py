"""Masked Small Gradients (MSG): 2nd place of the NeurIPS 2023 unlearning challenge (DeepUnlearn ``kgltop2``).

From the original code: accumulate, without stepping, the gradient of the loss on a random retain subset
as large as the forget set minus the gradient of the loss on the forget set; in every weighted layer mark
the ``reinit_fraction`` (30%) of weights with the smallest |gradient|, re-draw them, and fine-tune on the
retain set while gradients of the kept weights are scaled by ``kept_grad_scale`` (0.1), with a learning
rate that ramps up linearly over the first half of the epochs and decays linearly after (the original's
``LinearAnnealingLR`` steps per epoch, 1/3, 2/3, 1, 2/3, 1/3 of the rate over 5 epochs; here the ramp is
per optimiser step, up over the first (epochs + 1) // 2 epochs, then down to 0 at the end). The mask
ranks the gradient of the batch-mean loss summed over batches, as the original does (for L1 this sums
sign(e_i) df_i, which can cancel across opposite-sign errors: SSD and SalUn avoid that estimator, MSG
keeps the original's, since its rule ranks the *smallest* gradients and a cancelled gradient is small).

Regression adaptation (issue 9): L1 instead of cross-entropy, and Linear layers as well as convolutions
(so the head-scope model, an MLP head, has something to mask). Re-drawn convolution weights come from
Kaiming-normal (fan out, ReLU) as in the code; re-drawn Linear weights from the layer's own initialiser
(Kaiming-normal with fan out 1 would give the output layer a standard deviation of 1.4). Defaults from
the code: 5 epochs, SGD lr 1e-3 momentum 0.9, weight decay 5e-4, batch 64.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from olvido.methods.base import Knob, Param, UnlearnConfig, UnlearnContext, dataset_of, register, reinitialise
from olvido.methods.layers import weighted_layers
from olvido.training import StepHooks, as_loader, fit, to_channels_last


@dataclass
class MsgConfig(UnlearnConfig):
    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    batch_size: int = 64
    reinit_fraction: float = 0.3
    kept_grad_scale: float = 0.1


def accumulate_gradients(
    model: nn.Module, data, sign: float, batch_size: int, seed: int, device, limit: int | None = None
) -> None:
    """Add ``sign`` x the gradient of the batch-mean L1 loss over (the first ``limit`` samples of) ``data``."""
    seen = 0
    for x, y in as_loader(data, batch_size, shuffle=True, seed=seed):
        if limit is not None and seen >= limit:
            break
        x, y = to_channels_last(x.to(device)), y.to(device)
        (sign * (model(x).reshape(-1) - y).abs().mean()).backward()
        seen += len(y)


@register(
    "msg",
    MsgConfig,
    "re-draw the weights with the smallest retain-minus-forget gradient, then fine-tune",
    label="MSG",
    reference="NeurIPS 2023 unlearning challenge, 2nd place (DeepUnlearn kgltop2)",
    needs=("retain", "forget"),
    knob=Knob("epochs", (2, 3, 5, 8)),
    space={
        "epochs": Param(1, 8, integer=True),
        "lr": Param(1e-4, 1e-1, log=True),
        "reinit_fraction": Param(0.05, 0.6),
        "kept_grad_scale": Param(0.0, 1.0),
    },
)
def msg(model: nn.Module, context: UnlearnContext, config: MsgConfig) -> nn.Module:
    device = context.device
    model.to(device).eval()  # gradients only: BatchNorm statistics must not move
    model.zero_grad(set_to_none=True)
    forget_size = len(dataset_of(context.forget))  # samples, not batches, when a DataLoader is given
    accumulate_gradients(model, context.retain, 1.0, config.batch_size, config.seed, device, limit=forget_size)
    accumulate_gradients(model, context.forget, -1.0, config.batch_size, config.seed + 1, device)
    masks: dict[nn.Parameter, torch.Tensor] = {}
    with torch.no_grad():
        for index, layer in enumerate(weighted_layers(model)):
            weight = layer.weight
            if weight.grad is None or weight.numel() < 2:
                continue
            magnitude = weight.grad.abs().flatten()
            count = int(config.reinit_fraction * magnitude.numel())
            if count == 0:
                continue
            redraw = torch.zeros_like(magnitude, dtype=torch.bool)
            redraw[torch.topk(magnitude, count, largest=False).indices] = True
            redraw = redraw.view_as(weight)
            fresh = copy.deepcopy(layer)
            reinitialise(fresh, 7919 * config.seed + index)
            if isinstance(layer, nn.Conv2d):
                generator = torch.Generator().manual_seed(7919 * config.seed + index)
                std = (2.0 / (weight.shape[0] * weight[0, 0].numel())) ** 0.5  # Kaiming normal, fan out, ReLU
                fresh.weight.copy_(torch.randn(weight.shape, generator=generator) * std)
            weight.copy_(torch.where(redraw, fresh.weight.to(weight), weight))
            masks[weight] = torch.where(redraw, 1.0, config.kept_grad_scale).to(weight)
    model.zero_grad(set_to_none=True)

    def scale_gradients(m: nn.Module) -> None:
        for parameter, scale in masks.items():
            if parameter.grad is not None:
                parameter.grad.mul_(scale)

    fit_config = config.fit_config(
        schedule="linear", warmup_epochs=float((config.epochs + 1) // 2) if config.epochs else 0.0
    )
    fit(model, context.retain, None, fit_config, hooks=StepHooks(after_backward=scale_gradients), description="msg")
    return model
