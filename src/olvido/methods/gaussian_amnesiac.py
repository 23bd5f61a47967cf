"""Gaussian-Amnesiac from Deep Regression Unlearning (Tarun et al., ICML 2023).

From the original code: the forget set's labels are replaced, once per image, by draws from a normal
distribution with the mean and standard deviation of all training labels (retain and forget), and the
original is fine-tuned on retain plus the relabelled forget set (1 epoch, Adam 1e-3). The regression
counterpart of Amnesiac's random class labels. Draws are clipped to the label range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from olvido.methods.base import (
    LEARNING_RATE,
    Knob,
    Param,
    UnlearnConfig,
    UnlearnContext,
    dataset_of,
    register,
    targets_of,
)
from olvido.training import ConcatSamples, Relabeled, fit


@dataclass
class GaussianAmnesiacConfig(UnlearnConfig):
    epochs: int = 1
    lr: float = 1e-3
    batch_size: int = 256


@register(
    "gaussian_amnesiac",
    GaussianAmnesiacConfig,
    "fine-tune with forget labels redrawn from the training-label distribution",
    label="G-Amnesiac",
    reference="Tarun et al., Deep Regression Unlearning, ICML 2023",
    needs=("retain", "forget"),
    knob=Knob("epochs", (1, 2, 4, 8)),
    space={"epochs": Param(1, 8, integer=True), "lr": LEARNING_RATE},
)
def gaussian_amnesiac(model: nn.Module, context: UnlearnContext, config: GaussianAmnesiacConfig) -> nn.Module:
    labels = np.concatenate([targets_of(context.retain), context.forget_labels])
    rng = np.random.default_rng([config.seed, 53])
    low, high = context.label_range
    drawn = np.clip(rng.normal(labels.mean(), labels.std(), len(context.forget_labels)), low, high).astype(np.float32)
    data = ConcatSamples([dataset_of(context.retain), Relabeled(dataset_of(context.forget), drawn)])
    fit(model, data, None, config.fit_config(), description="gaussian_amnesiac")
    return model
