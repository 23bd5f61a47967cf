"""NegGrad+ (Kurmanji et al., NeurIPS 2023): descend on the retain loss while ascending on the forget loss.

From the original code (``meghdadk/SCRUB``, ``run_neggrad_epoch``; DeepUnlearn ``neggradplus.py``): every
step pairs a retain batch with a forget batch (the forget loader cycles), loss = beta * retain loss -
(1 - beta) * forget loss, with the model in eval mode so BatchNorm statistics stay frozen and forget
batches cannot leak into them. Regression adaptation (METHODS.md 3.2): both losses are L1 over the
original's retain MAE m_r; the ascent term is bounded, ``min(|f(x) - y|, bound * m_r)``, and counts only
forget samples whose prediction is inside the label range, so it never drives predictions out of it. The
bound (2 m_r) is about where a model that never saw a face errs on it (a retrained model's error on the
forgotten ages is 2-3 times its retain error on UTKFace), so ascent stops where forgotten faces look unseen. Dropout
stays active (only BatchNorm is frozen), as in olvido's training.

Defaults: beta 0.95 and lr 0.01 from the paper's small-scale setting, SGD (momentum 0.9, DeepUnlearn's),
batch 256, 5 epochs (the large-scale count: the small-scale 10 epochs cost more than retraining here).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from olvido.methods.base import EPOCHS, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.training import cycle_batches, fit


@dataclass
class NegGradPlusConfig(UnlearnConfig):
    epochs: int = 5
    lr: float = 0.01
    optimizer: str = "sgd"
    batch_size: int = 256
    beta: float = 0.95
    bound: float = 2.0  # in units of the original's retain MAE: errors beyond it are no longer ascended


@register(
    "neggrad_plus",
    NegGradPlusConfig,
    "descend on retain while ascending (bounded) on the forget set, BatchNorm frozen",
    label="NegGrad+",
    reference="Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023",
    needs=("retain", "forget"),
    knob=Knob("epochs", (1, 2, 5, 10)),
    space={"epochs": EPOCHS, "lr": Param(1e-4, 1e-1, log=True), "beta": Param(0.5, 0.999)},
)
def neggrad_plus(model: nn.Module, context: UnlearnContext, config: NegGradPlusConfig) -> nn.Module:
    low, high = context.label_range
    scale = context.retain_mae
    forget_batches = cycle_batches(context.forget, config.batch_size, config.seed + 1, context.device)

    def step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        retain_loss = (m(x).reshape(-1) - y).abs().mean() / scale
        xf, yf = next(forget_batches)
        prediction = m(xf).reshape(-1)
        inside = ((prediction > low) & (prediction < high)).float()
        forget_loss = ((prediction - yf).abs().clamp(max=config.bound * scale) * inside).mean() / scale
        return config.beta * retain_loss - (1 - config.beta) * forget_loss

    fit(model, context.retain, None, config.fit_config(freeze_batchnorm=True), step=step, description="neggrad_plus")
    return model
