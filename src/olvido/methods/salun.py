"""SalUn (Fan et al., ICLR 2024): random-label fine-tuning in which only the forget set's most salient weights move.

From the original code (``OPTML-Group/Unlearn-Saliency``): ``generate_mask.py`` ranks every weight by the
magnitude of the forget-loss gradient and keeps the top ``t`` fraction (``with_0.5.pt`` in the README's
example); ``main_random.py --unlearn RL --mask_path ...`` then fine-tunes with random labels on the forget
set and true labels on the retain set (``unlearn/RL.py``; shuffled together in its CIFAR-100 branch), the
gradients multiplied by the mask after every backward pass and the masked-out weights restored after every
optimiser step. The mask and the hooks are in ``saliency.py``.

Regression adaptation: the saliency is the sum of per-sample L1-gradient magnitudes over the forget set (a
summed L1 gradient cancels between errors of opposite sign; see ``saliency.py``). The random labels, by
default ``labels="prior"``, are the counterpart of the original's uniformly random class labels
(``RL.py``: ``torch.randint(0, num_classes)``, on balanced CIFAR the label prior): every time a forget
sample is served its label is drawn afresh from the retain labels (the training-label prior), whose L1
optimum is the prior's median, so forget predictions are pulled away from their own ages. The forget
samples are trained together with the retain set. ``labels="offsets"`` gives the thesis's RND instead
(an offset from {-6..-3, +3..+6} years, clipped to the label range; SalUn is then exactly RND with a mask,
and ``mask_ratio`` 1 is RND): the offsets are symmetric, so on a forget sample the L1 loss is flat within
a few years of its label and nothing pushes the prediction away (on the tests' stripes problem no setting
moved the forget error reliably). Until the committed report is regenerated, its SalUn rows were measured
with the offsets.

Defaults: ``mask_ratio`` 0.5 from the README; the fine-tuning is RND's (the scope's training learning rate
and batch size, Adam, the thesis's best 2 epochs) rather than the code's SGD lr 0.013, momentum 0.9, weight
decay 5e-4, batch 256, 10 epochs, which were set for cross-entropy on a CIFAR-10 ResNet-18 trained with SGD
0.1: L1 in years has another scale, and the thesis found RND beyond 2 epochs wrecks accuracy (test MAE 15).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import Dataset

from olvido.errors import OlvidoError
from olvido.methods.base import (
    EPOCHS,
    LEARNING_RATE,
    Knob,
    Param,
    UnlearnConfig,
    UnlearnContext,
    check_max_samples,
    dataset_of,
    register,
    targets_of,
)
from olvido.methods.random_labels import THESIS_OFFSETS, ShiftedLabels
from olvido.methods.saliency import SALIENCY_SAMPLES, check_ratio, masked_update_hooks, saliency_mask
from olvido.training import ConcatSamples, fetch_batch, fit

LABELS = ("offsets", "prior")


class PriorLabels(Dataset):
    """Serves ``base``'s samples with labels drawn afresh at every visit from ``pool`` (the retain labels)."""

    def __init__(self, base: Dataset, pool, seed: int = 0):
        self.base = base
        self.pool = torch.as_tensor(pool, dtype=torch.float32)
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.base)

    def _draw(self, shape) -> torch.Tensor:
        return self.pool[torch.randint(len(self.pool), shape, generator=self.generator)]

    def __getitem__(self, index: int):
        x, _ = self.base[index]
        return x, self._draw(())

    def __getitems__(self, indices: list[int]):
        x, y = fetch_batch(self.base, indices)
        return x, self._draw(y.shape)


@dataclass
class SalunConfig(UnlearnConfig):
    epochs: int = 2  # RND's (the thesis's best)
    offsets: tuple[int, ...] = THESIS_OFFSETS
    mask_ratio: float = 0.5  # the fraction of trainable weights that may move (README: with_0.5.pt)
    saliency_samples: int | None = SALIENCY_SAMPLES  # forget samples the saliency sums over (None: all)
    labels: str = "prior"  # "prior": drawn from the retain labels (the original's); "offsets": the thesis's RND

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ratio(self.mask_ratio)
        check_max_samples("saliency_samples", self.saliency_samples)
        if self.labels not in LABELS:
            raise OlvidoError(f"labels {self.labels!r}: expected one of {', '.join(LABELS)}")


@register(
    "salun",
    SalunConfig,
    "random-label fine-tuning (labels from the prior) of only the weights most salient to the forget set",
    label="SalUn",
    reference="Fan et al., SalUn, ICLR 2024 (OPTML-Group/Unlearn-Saliency)",
    needs=("retain", "forget"),
    knob=Knob("mask_ratio", (0.1, 0.3, 0.5, 0.7), label="salient fraction"),
    space={"mask_ratio": Param(0.05, 0.9), "epochs": EPOCHS, "lr": LEARNING_RATE},
    continues_recipe=True,
)
def salun(model: nn.Module, context: UnlearnContext, config: SalunConfig) -> nn.Module:
    mask = saliency_mask(
        model, context.forget, config.mask_ratio, config.batch_size, context.device, config.saliency_samples
    )
    low, high = context.label_range
    if config.labels == "prior":
        relabeled = PriorLabels(dataset_of(context.forget), targets_of(context.retain), seed=config.seed)
    else:
        relabeled = ShiftedLabels(dataset_of(context.forget), config.offsets, low, high, seed=config.seed)
    fit(
        model,
        ConcatSamples([dataset_of(context.retain), relabeled]),
        None,
        config.fit_config(),
        hooks=masked_update_hooks(mask),
        description="salun",
    )
    return model
