"""M_FT (thesis 3.2.1): fine-tune the original model on the retain set only, for a fixed number of epochs.

The forget set is never read. It continues the model's training recipe (the thesis fine-tuned with its
training recipe, lr 1e-5 for its end-to-end ResNet50): in a study, the scope's learning rate and batch size.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from olvido.methods.base import EPOCHS, LEARNING_RATE, Knob, UnlearnConfig, UnlearnContext, register
from olvido.training import fit


@dataclass
class FinetuneConfig(UnlearnConfig):
    epochs: int = 8  # the thesis's best


@register(
    "finetune",
    FinetuneConfig,
    "fine-tune on the retain set only",
    label="FT",
    reference="thesis 3.2.1 (M_FT); Golatkar et al., CVPR 2020, as a baseline",
    knob=Knob("epochs", (2, 4, 8, 16)),
    space={"epochs": EPOCHS, "lr": LEARNING_RATE},
    continues_recipe=True,
)
def finetune(model: nn.Module, context: UnlearnContext, config: FinetuneConfig) -> nn.Module:
    fit(model, context.retain, None, config.fit_config(), description="finetune")
    return model
