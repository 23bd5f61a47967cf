"""SCRUB (Kurmanji et al., NeurIPS 2023) for regression, with the SCRUB+R rewind.

From the original code (``meghdadk/SCRUB``, ``train_distill``): the student starts as the original, the
teacher is a frozen copy; each epoch begins (for the first ``max_steps`` epochs) with a max pass over the
forget set, pushing the student away from the teacher, then a min pass over the retain set, the task loss
plus alpha times distillation to the teacher. The original's distillation is ``DistillKL``: the KL
divergence of temperature-softened outputs times T^2 (``helper/KD.py``), the T^2 keeping the gradient's
scale independent of T (Hinton et al.). Regression adaptation (METHODS.md 3.1): logit matching, the squared
pre-sigmoid difference over T, times T^2 as in the original. For one scalar logit T then cancels (T^2
((s - t) / T)^2 = (s - t)^2, the high-temperature limit of the KL term), so ``temperature`` has no effect
and is not tuned; it stays a field so that configurations naming it still load. The max step maximises
the absolute distance of the student's predictions from the teacher's (absolute, not squared: a squared
distance has a zero gradient wherever student and teacher agree, the absolute one has a unit gradient
wherever they differ at all; PyTorch's gradient of |x| at exactly 0 is 0, so, as in the original, the
first max pass moves only where train-mode dropout or BatchNorm make the student differ from the eval-mode
teacher) *capped* at ``push`` times the original's retain MAE (about where an unseen face's error is), and
only for forget samples whose prediction is inside the label range, so the ascent can never run to 0 or 60
or out of the label range; the task loss is L1 over the original's retain MAE.

SCRUB+R (DeepUnlearn ``scrubv2.py``): given a ``holdout`` set (unseen samples like the forget set), the
student is saved after every epoch, and the epoch whose forget-set MAE is closest
to the final student's holdout MAE is returned: stop where forgotten faces look like unseen ones (an
oracle-free rule). Only ``unlearn(..., holdout=...)`` runs it: the study and ``olvido forget`` have no
holdout set and run plain SCRUB.

Defaults: the repository's large-scale arguments (3 epochs, 2 max epochs, T = 4, gamma 0.99; batch 128
for retain and 32 for forget are its argparse defaults, while its large-scale notebook builds loaders of
256 and 512), alpha 0.5 (its small-scale value), weight decay 5e-4 (the large-scale notebook's) and Adam
5e-4 (its small-scale optimiser; its SGD momentum setting is too slow at regression loss scales).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from olvido.methods.base import LEARNING_RATE, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.methods.layers import OutputTap
from olvido.training import Phase, fit, model_mae


@dataclass
class ScrubConfig(UnlearnConfig):
    epochs: int = 3
    max_steps: int = 2
    lr: float = 5e-4
    batch_size: int = 128  # retain (min) passes
    forget_batch_size: int = 32  # forget (max) passes
    weight_decay: float = 5e-4
    temperature: float = 4.0  # cancels in T^2 ((s - t) / T)^2 for a scalar logit (see the docstring)
    alpha: float = 0.5  # distillation weight in the min step
    gamma: float = 0.99  # task-loss weight in the min step
    push: float = 2.0  # the max step's cap on the distance from the teacher, in units of the retain MAE


@register(
    "scrub",
    ScrubConfig,
    "alternate pushing forget predictions away from the original and distilling it on retain",
    label="SCRUB",
    reference="Kurmanji et al., Towards Unbounded Machine Unlearning, NeurIPS 2023 (meghdadk/SCRUB)",
    needs=("retain", "forget", "teacher", "holdout"),
    knob=Knob("epochs", (1, 2, 3, 5)),
    space={
        "epochs": Param(1, 5, integer=True),
        "lr": LEARNING_RATE,
        "alpha": Param(0.0, 1.0),
        "gamma": Param(0.5, 1.0),
    },
)
def scrub(model: nn.Module, context: UnlearnContext, config: ScrubConfig) -> nn.Module:
    low, high = context.label_range
    scale = context.retain_mae
    context.teacher.to(context.device)
    with OutputTap(model) as student, OutputTap(context.teacher, like=model) as teacher:

        def teach(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return context.teacher(x).reshape(-1)

        def max_step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            target = teach(x)
            prediction = m(x).reshape(-1)
            inside = ((prediction > low) & (prediction < high)).float()
            # |distance| rather than its square: near the teacher, where every max pass starts, a squared
            # distance's gradient vanishes with the distance; |x|'s does not (except at exactly 0).
            distance = (prediction - target).abs().clamp(max=config.push * scale) / scale
            return -(distance * inside).mean()

        def min_step(m: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            teach(x)
            prediction = m(x).reshape(-1)
            temperature = config.temperature
            distill = ((student.logits - teacher.logits) / temperature).pow(2).mean() * temperature**2
            return config.gamma * (prediction - y).abs().mean() / scale + config.alpha * distill

        def phases(epoch: int) -> list[Phase]:
            plan = [Phase(context.forget, max_step, config.forget_batch_size)] if epoch <= config.max_steps else []
            return plan + [Phase(context.retain, min_step)]

        snapshots: list[tuple[float, dict]] = []

        def snapshot(m: nn.Module, epoch: int) -> bool:
            if context.holdout is not None:
                snapshots.append((model_mae(m, context.forget, str(context.device)), copy.deepcopy(m.state_dict())))
            return False

        if config.epochs > 0:
            fit(
                model, context.retain, None, config.fit_config(), phases=phases, stop_when=snapshot, description="scrub"
            )
    if snapshots:  # SCRUB+R: rewind to the epoch whose forget MAE is closest to the final holdout MAE
        target = model_mae(model, context.holdout, str(context.device))
        _, state = min(snapshots, key=lambda item: abs(item[0] - target))
        model.load_state_dict(state)
    return model
