"""Activation-based perturbation, then fine-tuning: the thesis's "perturb-then-fine-tune with activation
values" (its section 2.2, related work it proposed and did not implement; there is no original code).

Algorithm: with the model in eval mode (BatchNorm statistics and dropout fixed), forward hooks on every hidden
layer (the trainable convolutions, and the Linear layers before the output layer) record each unit's output
over the forget set and over the retain set, averaged over positions for a convolution channel (or a Linear
layer applied to sequences). Units are ranked by the standardised difference ``(mean_forget - mean_retain) /
sqrt((var_forget + var_retain) / 2)`` (Cohen's d), and the incoming weights and bias of the top ``fraction``
of all units are re-drawn from the layer's own initialiser, seeded by the run. The model is then fine-tuned
on the retain set. Cost: one forward pass over both sets, (1 + rho) / 3 E_r, plus the fine-tuning.

Choices, and why. The score is signed: the units the forget set drives *up*, which after a ReLU are the
ones that fire for it. It is read before the non-linearity, because that is what a forward hook on the layer
sees in any model. It is standardised because raw activation scales differ between layers and units
(BatchNorm, widths) and one global ranking needs a unit-free score; it is also unchanged by the per-channel
affine of a following BatchNorm (with a positive scale). Pooling both variances keeps it finite for a unit
silent on the retain set. Only trainable parameters are re-drawn, and the output layer (found by module) is
never ranked: its unit is the prediction. Outgoing weights are kept, so a re-drawn unit feeds noise forward
until the fine-tuning retrains it or learns to ignore it; a re-drawn channel's BatchNorm running statistics
are re-estimated by the fine-tuning, which runs in train mode.

Defaults. The fine-tuning continues the model's training recipe, as the thesis's M_FT (perturb, then
fine-tune), for 4 epochs: half M_FT's best 8, since the perturbation does part of the forgetting. The
fraction is swept over (0.05, 0.1, 0.2, 0.4), default 0.1: of the order of MSG's 30% re-drawn weights, but
whole units. On the stripes problem fine-tuning alone moves the forget MAE 3-6% of the way to retraining's;
re-drawing 20% of the units first moves it 90-120% (5 seeds, 15 epochs).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.methods.base import LEARNING_RATE, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.methods.layers import hidden_layers
from olvido.training import as_loader, fit, to_channels_last


@dataclass
class ActivationResetConfig(UnlearnConfig):
    epochs: int = 4  # fine-tuning after the re-draw
    fraction: float = 0.1  # of all hidden units, ranked globally

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.fraction <= 1:
            raise OlvidoError(f"fraction {self.fraction!r}: expected a fraction of units between 0 and 1")


class UnitMoments:
    """Per-unit running sums of a layer's outputs and their squares (float64), from a forward hook."""

    def __init__(self, layer: nn.Module):
        self.count, self.total, self.squares = 0, None, None
        self._handle = layer.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        values = output.detach().double()
        if values.ndim > 2 and isinstance(module, nn.Linear):  # (batch, *positions, units), e.g. tokens
            values = values.flatten(1, -2).mean(1)
        elif values.ndim > 2:  # (batch, units, *spatial): a convolution channel's mean over positions
            values = values.flatten(2).mean(-1)
        if self.total is None:
            self.total, self.squares = values.sum(0), values.pow(2).sum(0)
        else:
            self.total, self.squares = self.total + values.sum(0), self.squares + values.pow(2).sum(0)
        self.count += values.shape[0]

    def remove(self) -> None:
        self._handle.remove()

    def moments(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-unit mean and variance of what was recorded."""
        if not self.count:
            raise OlvidoError("activation_reset: a set to compare activations on is empty")
        mean = self.total / self.count
        return mean, (self.squares / self.count - mean.pow(2)).clamp_min(0)


@torch.no_grad()
def unit_moments(model: nn.Module, layers: list[nn.Module], data, batch_size: int, device) -> list[tuple]:
    """Each layer's per-unit (mean, variance) of its outputs over ``data``, in eval mode."""
    recorders = [UnitMoments(layer) for layer in layers]
    try:
        for x, _ in as_loader(data, batch_size, shuffle=False, seed=0):
            model(to_channels_last(x.to(device)))
    finally:
        for recorder in recorders:
            recorder.remove()
    return [recorder.moments() for recorder in recorders]


def unit_scores(model: nn.Module, layers: list[nn.Module], retain, forget, batch_size: int, device) -> list:
    """Per layer, each unit's standardised forget-minus-retain activation (see the module docstring)."""
    was_training = model.training
    model.eval()  # BatchNorm statistics must not move, dropout must not add noise
    try:
        on_forget = unit_moments(model, layers, forget, batch_size, device)
        on_retain = unit_moments(model, layers, retain, batch_size, device)
    finally:
        model.train(was_training)
    scores = []
    for (mean_f, var_f), (mean_r, var_r) in zip(on_forget, on_retain):
        pooled = ((var_f + var_r) / 2).sqrt()
        # a unit constant on both sets carries no signal: 0, not 0/0
        scores.append(torch.where(pooled > 0, (mean_f - mean_r) / pooled.clamp_min(1e-12), 0.0).float().cpu())
    return scores


def top_units(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Per layer, the indices of its units among the top ``fraction`` of all units by score."""
    flat = torch.cat(scores)
    count = min(int(round(fraction * len(flat))), len(flat))
    chosen = torch.zeros(len(flat), dtype=torch.bool)
    chosen[torch.topk(flat, count, sorted=True).indices] = True
    out, start = [], 0
    for layer_scores in scores:
        out.append(torch.nonzero(chosen[start : start + len(layer_scores)]).flatten())
        start += len(layer_scores)
    return out


@torch.no_grad()
def redraw_units(layer: nn.Module, units: torch.Tensor, fresh: nn.Module) -> None:
    """Copy the incoming weights (and bias) of ``units`` from ``fresh``, a re-initialised copy of ``layer``."""
    for name in ("weight", "bias"):
        parameter = getattr(layer, name, None)
        if parameter is None or not parameter.requires_grad:
            continue
        parameter[units] = getattr(fresh, name).to(parameter)[units]


@register(
    "activation_reset",
    ActivationResetConfig,
    "re-draw the hidden units the forget set activates most, then fine-tune on the retain set",
    label="ActReset",
    reference="thesis 2.2 (perturb-then-fine-tune with activation values)",
    needs=("retain", "forget"),
    knob=Knob("fraction", (0.05, 0.1, 0.2, 0.4), label="fraction of units re-drawn"),
    space={"fraction": Param(0.02, 0.6), "epochs": Param(1, 8, integer=True), "lr": LEARNING_RATE},
    continues_recipe=True,
)
def activation_reset(model: nn.Module, context: UnlearnContext, config: ActivationResetConfig) -> nn.Module:
    device = context.device
    model.to(device)
    layers = hidden_layers(model)
    if layers and config.fraction > 0:
        scores = unit_scores(model, layers, context.retain, context.forget, 1024, device)
        for index, (layer, units) in enumerate(zip(layers, top_units(scores, config.fraction))):
            if len(units):
                fresh = context.fresh(copy.deepcopy(layer), salt=index)
                redraw_units(layer, units.to(layer.weight.device), fresh)
    fit(model, context.retain, None, config.fit_config(), description="activation_reset")
    return model
