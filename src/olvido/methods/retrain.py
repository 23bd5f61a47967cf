"""Retraining from scratch on the retain set: the exact, expensive gold standard (M_R).

The fresh model comes from ``context.new_model(seed)``: for olvido's models ``Workspace.new_member`` (the
same pretrained starting point as the original, a new head); for a foreign model a copy with every layer
re-initialised. Training early-stops on ``val`` (the retain part of validation), like the original model,
with the model's own training recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from olvido.methods.base import Knob, UnlearnConfig, UnlearnContext, register
from olvido.training import fit


@dataclass
class RetrainConfig(UnlearnConfig):
    epochs: int = 200
    patience: int | None = 10


@register(
    "retrain",
    RetrainConfig,
    "retrain from the same starting point on the retain set (the gold standard)",
    label="R",
    reference="thesis 3.1 (M_R); exact unlearning",
    needs=("retain", "val", "new_model"),
    knob=Knob("epochs", ()),
    continues_recipe=True,
)
def retrain(model: nn.Module, context: UnlearnContext, config: RetrainConfig) -> nn.Module:
    fresh = context.new_model(config.seed)
    fit(fresh, context.retain, context.val, config.fit_config(patience=config.patience), description="retrain")
    return fresh
