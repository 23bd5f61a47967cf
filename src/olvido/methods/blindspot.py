"""Blindspot unlearning from Deep Regression Unlearning (Tarun et al., ICML 2023), the only method of the
field built for regression (its AgeDB experiment forgets everyone aged 0-30).

From the original code (``unlearn.py``, ``forget_loss``): a *proxy* model that never saw the forget set is
trained briefly on the retain set (2 epochs); then the original is trained for 1 epoch on retain plus
forget, where retain samples use the L1 loss to their labels and forget samples the L1 loss to the
proxy's predictions plus ``beta`` (50) times the squared difference of attention maps (per-sample
L2-normalised channel means of squared activations) between original and proxy, summed over the model's
conv blocks' outputs (Conv2d -> BatchNorm -> ReLU, ``models.py``; 8 maps on its AllCNN), beta per map;
the two losses are weighted by the fraction of forget samples in the batch. The proxy captures what a
retrained model does with forgotten ages: it extrapolates from the retained range.

Adaptation: the proxy is ``context.new_model`` (for olvido's models the same pretrained starting point as
the original, a new head) trained at this config's learning rate; the code's proxy learning rate (0.01,
from scratch) would wreck a pretrained stage. The maps are taken, as in the original, at block outputs:
the outputs of the activation modules between the first trainable layer and the output layer
(``layers.block_outputs``: the 2 ReLUs of the head scope's thesis head; one per Conv2dNormActivation of
the trainable MobileNetV2 stage in the ``last`` scope), beta per map as in the original (so the attention
term grows with the number of blocks, as the original's would on a deeper network). No augmentation (the
original crops and flips; olvido's models see cached features or fixed views). Defaults from the code:
Adam 1e-3, batch 256, 1 epoch, beta 50, proxy 2 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from olvido.methods.base import (
    LEARNING_RATE,
    Knob,
    Param,
    UnlearnConfig,
    UnlearnContext,
    dataset_of,
    predictions_of,
    register,
    targets_of,
)
from olvido.methods.layers import activations, block_outputs, counterpart
from olvido.training import ConcatSamples, Relabeled, fit


@dataclass
class BlindspotConfig(UnlearnConfig):
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 256
    beta: float = 50.0
    proxy_epochs: int = 2


def attention(activation: torch.Tensor) -> torch.Tensor:
    """Per-sample attention map: channel mean of squared activations (squared units for 2-d), L2-normalised."""
    energy = activation.pow(2).mean(dim=1) if activation.ndim > 2 else activation.pow(2)
    return F.normalize(energy.flatten(1), dim=1)


@register(
    "blindspot",
    BlindspotConfig,
    "pull forget predictions and attention maps to a proxy trained on retain only",
    label="Blindspot",
    reference="Tarun et al., Deep Regression Unlearning, ICML 2023",
    needs=("retain", "forget", "new_model"),
    knob=Knob("epochs", (1, 2, 3, 5)),
    space={"epochs": Param(1, 5, integer=True), "lr": LEARNING_RATE, "beta": Param(1.0, 500.0, log=True)},
)
def blindspot(model: nn.Module, context: UnlearnContext, config: BlindspotConfig) -> nn.Module:
    proxy = context.new_model(config.seed + 1)
    fit(proxy, context.retain, None, config.fit_config(epochs=config.proxy_epochs), description="blindspot proxy")
    student_layers = block_outputs(model)
    proxy_layers = [counterpart(layer, model, proxy) for layer in student_layers]
    proxy.eval()
    for parameter in proxy.parameters():
        parameter.requires_grad_(False)
    proxy_targets = predictions_of(proxy, context.forget, context.device)
    retain, forget = dataset_of(context.retain), dataset_of(context.forget)
    # Targets carry a second column: 1 marks a forget sample (target = the proxy's prediction).
    data = ConcatSamples(
        [
            Relabeled(retain, np.stack([targets_of(retain), np.zeros(len(retain))], axis=1)),
            Relabeled(forget, np.stack([proxy_targets, np.ones(len(forget))], axis=1)),
        ]
    )

    def step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        target, is_forget = y[:, 0], y[:, 1] > 0.5
        with activations(proxy_layers) as proxy_acts:
            with torch.no_grad():
                proxy(x)
        with activations(student_layers) as student_acts:
            errors = (m(x).reshape(-1) - target).abs()
        fraction = is_forget.float().mean()
        retain_loss = errors[~is_forget].mean() if (~is_forget).any() else errors.sum() * 0
        forget_loss = errors[is_forget].mean() if is_forget.any() else errors.sum() * 0
        if is_forget.any():
            for student_act, proxy_act in zip(student_acts, proxy_acts):
                rows = is_forget.repeat_interleave(student_act.shape[0] // len(y))  # mirrored views: 2 rows each
                forget_loss = (
                    forget_loss
                    + config.beta * (attention(student_act[rows]) - attention(proxy_act[rows])).pow(2).mean()
                )
        return fraction * forget_loss + (1 - fraction) * retain_loss

    fit(model, data, None, config.fit_config(), step=step, description="blindspot")
    return model
