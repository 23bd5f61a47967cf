"""Selective Synaptic Dampening (Foster et al., AAAI 2024) and its label-free (LFSSD) and tuning-free (ASSD)
variants: no training, one gradient pass over the training data, then a multiplicative edit of the weights.

From the original code (``if-loops/selective-synaptic-dampening``: ``ssd.py`` ``calc_importance`` and
``modify_weight``, ``forget_random_strategies.py`` ``ssd_tuning``): importances I_f over the forget set
and I_D over the full training set (retain + forget) are means over batches of squared batch gradients
of the loss; every parameter with I_f > alpha I_D is multiplied by min(lambda I_D / I_f, 1) (exponent 1,
lower bound 1); lambda = 1 (``dampening_constant``), alpha = 10 (``selection_weighting``). LFSSD (the
README's patch) replaces the cross-entropy by the label-free ||f(x)||^2 and accumulates |gradient|.
ASSD (the authors' notebook ``error_unlearning.ipynb``, METHODS.md section 3.5) takes the reference
importance over the *retain* set alone (``original_importances = pdr.calc_importance(retain_loader)``),
sets alpha to the (100 - ln(1 + 100 |D_f| / |D|))-th percentile of the element-wise ratios I_f / I_r
(NaN and infinite ratios left out of the percentile), lambda = 1. A weight the retain set does not use
(I_r = 0 < I_f) has an infinite ratio: always selected, and dampened to 0.

The reference (``SsdConfig.reference``). The authors' rule ``"full"`` compares I_f with I_D. With
importances that are means over samples, I_D is the mixture (1 - rho) I_r + rho I_f (rho = |D_f| / |D|),
so "I_f > alpha I_D" is the same test as I_f / I_r > alpha (1 - rho) / (1 - alpha rho): alpha means a
different ratio on every forget set (13.8x on thesis group 0, rho 0.23, at alpha 3.5; 2.3x on groups 3-4
at 2.29) and nothing can be selected once alpha >= 1 / rho. The original's unshuffled full-set loader
has the same 1 / rho ceiling; its alpha = 10 worked because its forget fractions were at most 0.05, where
10 means I_f / I_r > 10-19. The default here, ``"retain"`` (the adaptation for large forget sets, as ASSD
does), compares I_f with I_r and dampens by min(lambda I_r / I_f, 1): alpha is then the same ratio on
every forget set. The defaults were measured on real UTKFace (head scope, one ImageNet-initialised member,
seed 0: a proxy, the face-pretrained backbone was not at hand; ``bench/bench_ssd_defaults.py``): at the
paper's 10, SSD and LFSSD leave group 0's forget MAE where O has it (moved 0.01 and 0.00 of the way to
R's); SSD at 5 moves it 0.29 of the way (F 0.905 against O's 0.859) and LFSSD at 2 0.31 (F 0.908), and
neither collapses a group (F at least O's on groups 0-4; group 4: SSD 0.771, LFSSD 0.826, O 0.684).

Regression adaptation (METHODS.md sections 0 and 3.5; ``olvido.methods.importance``): batch gradients of
an L1 loss cancel across samples with opposite-sign errors, so SSD's and ASSD's importances are means of
squared per-sample gradients, the Fisher mean_i (df_i/dtheta)^2 (the squared per-sample L1 gradient).
They are estimated by default with random signs (unbiased, one backward per batch, 24 batches per set:
relative sd about 0.29) or exactly (``per_sample``, about 10x the cost on convolutions), on a fixed random
subset of at most ``max_samples`` = 384 samples per set (None: all). LFSSD keeps its authors' estimator,
the mean over batches of |gradient of the batch mean| (``batch_abs``), one batch size for both sets, of
the label-free output f rather than ||f||^2: for a scalar output in years, d f^2 = 2 f df weighs every
sample by its age (4 f^2 squared, about x0.5 for group 0 and x2 for group 4), a bias the classification
original does not have (there is no error sign to cancel, so the batch gradient is kept).
Why a subset: over every sample (about 4,400 retain and 1,600 forget on the ``last`` scope's MobileNetV2
stage + head, CPU) the two passes cost 1.5-1.6 training epochs over the retain set, as METHODS.md
estimates (1.6 E_r), and the study's last-scope retraining stops early after about 6 epochs. Measured on
forget group 0 (BENCHMARKS.md, "Importances and saliency on a subset"; medians over three originals):
every sample 21% of retraining; 1,024 per set 11%; 512 per set 6%; 384 per set 4.4% (SSD) and 4.8%
(ASSD). The default buys the issue's <= 5% at some loss of fidelity; ``max_samples=None, draws=100``
restores the full estimate. The subset and the sign draws are fixed, so the result depends on the data
only, not on the seed: deterministic, as the paper's.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.methods.base import (
    Knob,
    Param,
    UnlearnConfig,
    UnlearnContext,
    check_max_samples,
    dataset_of,
    fixed_subset,
    register,
)
from olvido.methods.importance import batch_for, check_options, importances, mixture

REFERENCE = "Foster et al., AAAI 2024 (if-loops/selective-synaptic-dampening)"
SIGN_SEED = 104729


@dataclass
class AssdConfig(UnlearnConfig):
    epochs: int = 0  # no training step: the inherited field is unused
    estimator: str = "random_sign"  # or "per_sample": exact, about 10x the cost on convolutions
    draws: int = 24  # random-sign batches per set: relative sd of importances about sqrt(2 / draws) = 0.29
    # Importances are means over samples: estimated on a fixed random subset of at most this many samples
    # per set (None: every sample); the cost grows with it, see the module docstring
    max_samples: int | None = 384
    dampening: float = 1.0  # lambda: factor min(lambda I_D / I_f, 1), the paper's 1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self.estimator, self.draws)
        check_max_samples("max_samples", self.max_samples)


REFERENCES = ("retain", "full")


@dataclass
class SsdConfig(AssdConfig):
    alpha: float = 5.0  # selection: I_f > alpha x the reference importance (measured, see the docstring)
    # "retain": the reference is I_r, so alpha means the same ratio on every forget set (the adaptation for
    # large forget sets); "full": the authors' I_D over retain + forget (see the docstring)
    reference: str = "retain"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.reference not in REFERENCES:
            raise OlvidoError(f"reference {self.reference!r}: expected one of {', '.join(REFERENCES)}")


@dataclass
class LfssdConfig(SsdConfig):
    estimator: str = "batch_abs"  # the authors' |batch gradient| (random_sign and per_sample square instead)
    alpha: float = 2.0  # its |batch gradient| ratios spread less than SSD's squared ones (measured, docstring)


def importances_of_sets(
    model: nn.Module, context: UnlearnContext, quantity: str, config: AssdConfig, reference: str = "retain"
) -> tuple[dict, dict, float]:
    """(I_f, the reference importance, rho = |D_f| / |D|): the reference is I_r (``"retain"``) or the
    size-weighted mixture I_D of retain and forget (``"full"``, one pass over each set, none twice)."""
    parts, batch = [], None
    for offset, data in enumerate((context.retain, context.forget)):
        size = len(dataset_of(data))  # the mixture weighs each set by its full size
        data = fixed_subset(data, config.max_samples, SIGN_SEED + offset)
        if batch is None or config.estimator != "batch_abs":
            # |batch gradients| depend on the batch size: batch_abs keeps the retain set's for both sets
            batch = batch_for(data, config.draws)
        # fixed sign draws (not the run's seed): SSD stays a function of the data, as in the paper
        options = dict(estimator=config.estimator, batch_size=batch, device=context.device, seed=SIGN_SEED + offset)
        parts.append((importances(model, data, quantity, **options), size))
    (retain, retain_size), (forget, forget_size) = parts
    rho = forget_size / (retain_size + forget_size)
    return forget, (retain if reference == "retain" else mixture(parts)), rho


def dampen(model: nn.Module, forget: dict, reference: dict, alpha: float, dampening: float) -> int:
    """Multiply every trainable parameter with I_f > alpha I_ref by min(lambda I_ref / I_f, 1) (``reference``
    holds I_ref: I_r or I_D); returns how many were selected."""
    selected = 0
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, forget_importance in forget.items():
            parameter = parameters[name]
            chosen = forget_importance > alpha * reference[name]
            # I_f > 0 wherever chosen (I_D >= 0), so the ratio is finite where it is used
            factor = (dampening * reference[name] / forget_importance.clamp_min(1e-30)).clamp(max=1.0)
            parameter.mul_(torch.where(chosen, factor, torch.ones_like(factor)).to(parameter.dtype))
            selected += int(chosen.sum())
    return selected


def _ssd(model: nn.Module, context: UnlearnContext, config: SsdConfig, quantity: str) -> nn.Module:
    forget, reference, rho = importances_of_sets(model, context, quantity, config, config.reference)
    if config.reference == "full" and config.alpha * rho >= 1:
        warnings.warn(
            f"{context.method}: alpha {config.alpha:g} >= |D|/|D_f| = {1 / rho:.2f}: "
            "no parameter can be selected, the model is returned unchanged",
            stacklevel=3,
        )
    dampen(model, forget, reference, config.alpha, config.dampening)
    return model


SSD_KNOB = Knob("alpha", (2.0, 5.0, 10.0, 20.0), label="selection alpha")
SSD_SPACE = {"alpha": Param(1.5, 50.0, log=True), "dampening": Param(0.1, 10.0, log=True)}


@register(
    "ssd",
    SsdConfig,
    "dampen the weights far more important (Fisher) to the forget set than to the retain set",
    label="SSD",
    reference=REFERENCE,
    needs=("retain", "forget"),
    knob=SSD_KNOB,
    space=SSD_SPACE,
    stochastic=False,
)
def ssd(model: nn.Module, context: UnlearnContext, config: SsdConfig) -> nn.Module:
    return _ssd(model, context, config, "fisher")


@register(
    "lfssd",
    LfssdConfig,
    "label-free SSD: importances from |batch gradients| of the output, no labels",
    label="LFSSD",
    reference="Foster et al., Loss-Free Machine Unlearning, ICLR 2024 Tiny Paper (SSD README)",
    needs=("retain", "forget"),
    knob=SSD_KNOB,
    space=SSD_SPACE,
    stochastic=False,
)
def lfssd(model: nn.Module, context: UnlearnContext, config: LfssdConfig) -> nn.Module:
    return _ssd(model, context, config, "output")


def adaptive_alpha(forget: dict, retain: dict, rho: float) -> float:
    """ASSD's alpha: the (100 - ln(1 + 100 rho))-th percentile of the finite ratios I_f / I_r."""
    with torch.no_grad():
        ratios = torch.cat([(forget[name] / retain[name]).flatten().cpu() for name in forget]).numpy()
    ratios = ratios[np.isfinite(ratios)]  # 0/0 (dead units) and x/0 are left out, as in the port
    if ratios.size == 0:
        return math.inf
    return float(np.percentile(ratios, 100 - math.log(1 + 100 * rho)))


@register(
    "assd",
    AssdConfig,
    "tuning-free SSD: the selection threshold from the forget set's share of the data",
    label="ASSD",
    reference="Schoepf et al., Parameter-Tuning-Free Data Entry Error Unlearning with Adaptive SSD, 2024",
    needs=("retain", "forget"),
    knob=Knob("dampening", (1.0,), label="dampening lambda"),
    space={"dampening": Param(0.1, 10.0, log=True)},
    stochastic=False,
)
def assd(model: nn.Module, context: UnlearnContext, config: AssdConfig) -> nn.Module:
    forget, retain, rho = importances_of_sets(model, context, "fisher", config, "retain")
    dampen(model, forget, retain, adaptive_alpha(forget, retain, rho), config.dampening)
    return model
