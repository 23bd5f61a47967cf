"""Retraining from scratch on the retain set: the exact, expensive gold standard (M_R).

``init(seed)`` must return the fresh model to train (for olvido's models, ``Workspace.new_member``: the
same pretrained starting point as the original, a new head). Without it every submodule with a
``reset_parameters`` method is re-initialised, which for a pretrained backbone means from random weights.
Training early-stops on ``val`` (the retain part of validation), like the original model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from olvido.methods.base import Data, UnlearnConfig, register
from olvido.training import fit


@dataclass
class RetrainConfig(UnlearnConfig):
    epochs: int = 200
    patience: int | None = 10
    init: Callable[[int], nn.Module] | None = None


def reset_parameters(model: nn.Module, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


@register("retrain", RetrainConfig, "M_R: retrain from scratch on the retain set (the gold standard)")
def retrain(model: nn.Module, retain: Data, forget: Data, val: Data, config: RetrainConfig) -> nn.Module:
    fresh = config.init(config.seed) if config.init else reset_parameters(model, config.seed)
    fit(fresh, retain, val, config.fit_config(patience=config.patience), description="retrain")
    return fresh
