"""M_FT (thesis 3.2.1): fine-tune the original model on the retain set only, for a fixed number of epochs.

The forget set is never used. Defaults: 8 epochs (the thesis's best), the scope's training learning rate
and batch size (the thesis fine-tuned with its training recipe, lr 1e-5 for its end-to-end ResNet50).
``val`` is only monitored (per-epoch MAE in the history), not used to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from olvido.methods.base import Data, UnlearnConfig, register
from olvido.training import fit


@dataclass
class FinetuneConfig(UnlearnConfig):
    epochs: int = 8


@register("finetune", FinetuneConfig, "M_FT: fine-tune on the retain set only (thesis 3.2.1)")
def finetune(model: nn.Module, retain: Data, forget: Data, val: Data, config: FinetuneConfig) -> nn.Module:
    fit(model, retain, val, config.fit_config(), description="finetune")
    return model
