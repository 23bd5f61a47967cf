"""GradMask: fine-tune on the retain set only, letting only the weights most salient to the forget set move.

The thesis (related work 2.2, "perturb-then-fine-tune") lists gradient saliency (GradMask) beside Fisher
information, activations and random labels (SalUn) as ways to pick what fine-tuning changes. Here: the SalUn
mask (``saliency.py``: the top ``mask_ratio`` fraction of trainable weights by the summed per-sample
L1-gradient magnitude over the forget set, ranked globally as SalUn's ``generate_mask.py``), then M_FT,
fine-tuning on the retain set alone, under the same hooks (unmasked gradients zeroed, unmasked weights
restored after every step). The weights the forget predictions depend on most are re-fitted to the retain
set while the rest stay as they are; the forget labels are never used for training.

Defaults: the fine-tuning is M_FT's (the scope's training learning rate and batch size, Adam, the thesis's
best 8 epochs); ``mask_ratio`` 0.5 as SalUn's README. The knob is ``mask_ratio``, not epochs: with
``mask_ratio`` 1 GradMask is FT, whose epoch sweep the study already runs, so the mask is what is new.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from olvido.methods.base import (
    EPOCHS,
    LEARNING_RATE,
    Knob,
    Param,
    UnlearnConfig,
    UnlearnContext,
    check_max_samples,
    register,
)
from olvido.methods.saliency import SALIENCY_SAMPLES, check_ratio, masked_update_hooks, saliency_mask
from olvido.training import fit


@dataclass
class GradMaskConfig(UnlearnConfig):
    epochs: int = 8  # M_FT's (the thesis's best)
    mask_ratio: float = 0.5  # the fraction of trainable weights that may move (as SalUn)
    saliency_samples: int | None = SALIENCY_SAMPLES  # forget samples the saliency sums over (None: all)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ratio(self.mask_ratio)
        check_max_samples("saliency_samples", self.saliency_samples)


@register(
    "gradmask",
    GradMaskConfig,
    "fine-tune on the retain set only the weights most salient to the forget set",
    label="GradMask",
    reference="thesis 2.2 (gradient-saliency perturb-then-fine-tune); mask as Fan et al., SalUn, ICLR 2024",
    needs=("retain", "forget"),
    knob=Knob("mask_ratio", (0.1, 0.3, 0.5, 0.7), label="salient fraction"),
    space={"mask_ratio": Param(0.05, 0.9), "epochs": EPOCHS, "lr": LEARNING_RATE},
    continues_recipe=True,
)
def gradmask(model: nn.Module, context: UnlearnContext, config: GradMaskConfig) -> nn.Module:
    mask = saliency_mask(
        model, context.forget, config.mask_ratio, config.batch_size, context.device, config.saliency_samples
    )
    fit(model, context.retain, None, config.fit_config(), hooks=masked_update_hooks(mask), description="gradmask")
    return model
