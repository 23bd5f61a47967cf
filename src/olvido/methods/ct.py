"""CT: transpose every convolution kernel, then fine-tune (5th place of the NeurIPS 2023 unlearning
challenge, DeepUnlearn ``kgltop5``).

From the original code: ``weight.swapaxes(2, 3)`` on every Conv2d (``kgltop5.py``), then 3 epochs of
fine-tuning on the retain set with SGD (lr 1e-3, momentum 0.9, weight decay 5e-4) and a cosine schedule
stepped per epoch. The transposition scrambles what the convolutions learnt while keeping their weight
statistics, so fine-tuning re-learns from a nearby, damaged starting point. Here the loss is L1 and the
fine-tuning continues the model's own training recipe (``continues_recipe``: its optimiser settings,
olvido's Adam without weight decay, its learning rate and batch size, e.g. 3e-4 and 64 in the ``last``
scope) with a cosine schedule stepped per optimiser step: the transposed stage is re-learnt as it was
first learnt, where the original's SGD recipe was set for its own CIFAR ResNet. The transpose itself is
unchanged. It needs trainable convolutions with kernels larger than 1x1 (a 1x1 kernel is its own
transpose), so it supports the ``last`` and ``all`` scopes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.methods.base import LEARNING_RATE, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.methods.layers import trainable_layers
from olvido.training import fit


@dataclass
class CtConfig(UnlearnConfig):
    epochs: int = 3


def transpose_kernels(model: nn.Module) -> int:
    """Transpose the spatial axes of every trainable square kernel larger than 1x1; returns how many."""
    count = 0
    with torch.no_grad():
        for layer in trainable_layers(model):
            if isinstance(layer, nn.Conv2d) and layer.weight.shape[2] == layer.weight.shape[3] > 1:
                layer.weight.copy_(layer.weight.transpose(2, 3).clone())
                count += 1
    return count


@register(
    "ct",
    CtConfig,
    "transpose the convolution kernels, then fine-tune on retain",
    label="CT",
    reference="NeurIPS 2023 unlearning challenge, 5th place (DeepUnlearn kgltop5)",
    scopes=("last", "all"),
    knob=Knob("epochs", (1, 2, 3, 5)),
    space={"epochs": Param(1, 5, integer=True), "lr": LEARNING_RATE},
    continues_recipe=True,
)
def ct(model: nn.Module, context: UnlearnContext, config: CtConfig) -> nn.Module:
    if transpose_kernels(model) == 0:
        raise OlvidoError(
            "method 'ct': the model has no trainable convolution with kernels larger than 1x1 "
            "(expected the last or all scope)"
        )
    fit(model, context.retain, None, config.fit_config(schedule="cosine"), description="ct")
    return model
