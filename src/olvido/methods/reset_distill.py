"""Reset + distillation warm-up + fine-tuning: 6th place of the NeurIPS 2023 unlearning challenge, the
thesis's "selective reset" (its section 2.4).

From the original code (DeepUnlearn's port ``kgltop6.py``): reset the first layer and the head, warm up
by distilling the original's outputs on held-out data, then train on the retain set with the task loss
plus distillation. Regression adaptation (METHODS.md 2.1): the KL between softened class distributions
becomes the squared difference of pre-sigmoid outputs (logit matching, the high-temperature limit of
KD) divided by the temperature, plus the squared difference of the penultimate features; the task loss
is L1 divided by the original's retain MAE, so both terms are O(1). The warm-up uses the validation data
the API passes, which in olvido's study is the *retain* part of validation. The reset makes every run
start from a fresh head, so run-to-run spread resembles retraining's.

Defaults from the code: 3 warm-up epochs, 3 retain epochs, distillation weight 2, T = 5, batch 64,
cosine schedule in the retain phase. Its SGD (lr 9e-4/1e-3, momentum 0.9) cannot train a reset head
from scratch in 3 epochs at regression loss scales (a reset head is most of a head-scope model); Adam at
1e-3 can, so Adam is the default (measured in BENCHMARKS.md, "Unlearning methods").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from olvido.methods.base import LEARNING_RATE, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.methods.layers import OutputTap, first_layer, head_of
from olvido.training import fit


@dataclass
class ResetDistillConfig(UnlearnConfig):
    epochs: int = 3  # retain phase
    warmup_epochs: int = 3  # distillation on validation data
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 5e-4
    temperature: float = 5.0
    distill_weight: float = 2.0
    feature_weight: float = 1.0


def distillation(student: OutputTap, teacher: OutputTap, temperature: float, feature_weight: float) -> torch.Tensor:
    """Squared logit difference over T plus ``feature_weight`` times the squared feature difference."""
    logits = ((student.logits - teacher.logits) / temperature).pow(2).mean()
    features = (student.features - teacher.features).pow(2).mean()
    return logits + feature_weight * features


@register(
    "reset_distill",
    ResetDistillConfig,
    "reset the first layer and the head, distil the original on retain data, fine-tune",
    label="Reset+KD",
    reference="NeurIPS 2023 unlearning challenge, 6th place (DeepUnlearn kgltop6); thesis 2.4",
    needs=("retain", "val", "teacher"),
    knob=Knob("epochs", (1, 2, 3, 5)),
    space={
        "epochs": Param(1, 5, integer=True),
        "lr": LEARNING_RATE,
        "temperature": Param(1.0, 8.0),
        "distill_weight": Param(0.5, 4.0),
    },
)
def reset_distill(model: nn.Module, context: UnlearnContext, config: ResetDistillConfig) -> nn.Module:
    context.fresh(first_layer(model), salt=1)
    context.fresh(head_of(model), salt=2)
    scale = context.retain_mae
    with OutputTap(model) as student, OutputTap(context.teacher, like=model) as teacher:

        def teach(x: torch.Tensor) -> None:
            with torch.no_grad():
                context.teacher(x)

        def warmup_step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            teach(x)
            m(x)
            return distillation(student, teacher, config.temperature, config.feature_weight)

        def retain_step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            teach(x)
            prediction = m(x).reshape(-1)
            task = (prediction - y).abs().mean() / scale
            return task + config.distill_weight * distillation(
                student, teacher, config.temperature, config.feature_weight
            )

        context.teacher.to(context.device)
        if config.warmup_epochs > 0:
            fit(
                model,
                context.val,
                None,
                config.fit_config(epochs=config.warmup_epochs),
                step=warmup_step,
                description="reset_distill warm-up",
            )
        if config.epochs > 0:
            fit(
                model,
                context.retain,
                None,
                config.fit_config(schedule="cosine"),
                step=retain_step,
                description="reset_distill",
            )
    return model
