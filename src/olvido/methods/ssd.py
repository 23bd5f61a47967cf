"""Selective Synaptic Dampening (Foster et al., AAAI 2024) and its label-free (LFSSD) and tuning-free (ASSD)
variants: no training, one gradient pass over the training data, then a multiplicative edit of the weights.

From the original code (``if-loops/selective-synaptic-dampening``: ``ssd.py`` ``calc_importance`` and
``modify_weight``, ``forget_random_strategies.py`` ``ssd_tuning``): importances I_f over the forget set
and I_D over the full training set (retain + forget) are means over batches of squared batch gradients
of the loss; every parameter with I_f > alpha I_D is multiplied by min(lambda I_D / I_f, 1) (exponent 1,
lower bound 1); lambda = 1 (``dampening_constant``), alpha = 10 (``selection_weighting``). LFSSD (the
README's patch) replaces the cross-entropy by the label-free ||f(x)||^2 and accumulates |gradient|.
ASSD (the adaptive port, METHODS.md section 3.5) sets alpha to the (100 - ln(1 + 100 |D_f| / |D|))-th
percentile of the element-wise ratios I_f / I_D (NaN and infinite ratios left out), lambda = 1.

Regression adaptation (METHODS.md sections 0 and 3.5; ``olvido.methods.importance``): batch gradients of
an L1 loss cancel across samples with opposite-sign errors, so importances here are means of squared
per-sample gradients: ``ssd`` and ``assd`` use the Fisher mean_i (df_i/dtheta)^2 (the squared per-sample
L1 gradient), ``lfssd`` mean_i (d f_i^2/dtheta)^2 on the model's output f (years; squared rather than
absolute, see ``importance``). They are estimated by default with random signs (unbiased, one backward per
batch, 24 batches per set: relative sd about 0.29) or exactly (``per_sample``, about 10x the cost on
convolutions), on a fixed random subset of at most ``max_samples`` = 384 samples per set (None: all).
Why a subset: over every sample (about 4,400 retain and 1,600 forget on the ``last`` scope's MobileNetV2
stage + head, CPU) the two passes cost 1.5-1.6 training epochs over the retain set, as METHODS.md
estimates (1.6 E_r), and the study's last-scope retraining stops early after about 6 epochs. Measured on
forget group 0 (BENCHMARKS.md, "Importances and saliency on a subset"; medians over three originals):
every sample 21% of retraining (SSD alpha 2.5: W1 to R 1.77, ASSD 3.66); 1,024 per set 11%; 512 per set
6%; 384 per set 4.4% (SSD) and 4.8% (ASSD), W1 2.55 and 4.35, F unchanged (1.00). The default buys the
issue's <= 5% at that loss of fidelity; ``max_samples=None, draws=100`` restores the full estimate. The
subset and the sign draws are fixed, so the result depends on the data only, not on the seed:
deterministic, as the paper's. I_D is the size-weighted (full sizes) mean of the retain and forget
importances (one pass over each subset, none twice).

Why alpha is not 10: a mean over samples makes I_D the mixture (1 - rho) I_retain + rho I_f with rho =
|D_f| / |D|, so I_f / I_D <= 1 / rho and alpha = 10 selects nothing once the forget set is a tenth of the
data (age-group forget sets are large: about 0.27 of it for thesis group 0). In the original, full-set
batch gradients cancel far more than those of a forget set sharing one class, which made 10 reachable.
alpha = 3.5 selects, on the stripes problem (rho = 0.19), the parameters about 9x more important to the
forget set than to the retain set, close to the paper's 10; near the bound the equivalent ratio climbs
fast (20-50x for thesis group 0), and the sweep's 2 is about 3x. A warning says when alpha >= 1/rho.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

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


@dataclass
class SsdConfig(AssdConfig):
    alpha: float = 3.5  # selection: I_f > alpha I_D (the paper's 10 is unreachable, see the docstring)


def _forget_and_full_importances(model: nn.Module, context: UnlearnContext, quantity: str, config: AssdConfig):
    parts = []
    for offset, data in enumerate((context.retain, context.forget)):
        size = len(dataset_of(data))  # the mixture below weighs each set by its full size
        data = fixed_subset(data, config.max_samples, SIGN_SEED + offset)
        # fixed sign draws (not the run's seed): SSD stays a function of the data, as in the paper
        batch = batch_for(data, config.draws)
        options = dict(estimator=config.estimator, batch_size=batch, device=context.device, seed=SIGN_SEED + offset)
        parts.append((importances(model, data, quantity, **options), size))
    (_, retain_size), (forget, forget_size) = parts
    return forget, mixture(parts), forget_size / (retain_size + forget_size)


def dampen(model: nn.Module, forget: dict, full: dict, alpha: float, dampening: float) -> int:
    """Multiply every trainable parameter with I_f > alpha I_D by min(lambda I_D / I_f, 1); returns how
    many were selected."""
    selected = 0
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, forget_importance in forget.items():
            parameter = parameters[name]
            chosen = forget_importance > alpha * full[name]
            # I_f > 0 wherever chosen (I_D >= 0), so the ratio is finite where it is used
            factor = (dampening * full[name] / forget_importance.clamp_min(1e-30)).clamp(max=1.0)
            parameter.mul_(torch.where(chosen, factor, torch.ones_like(factor)).to(parameter.dtype))
            selected += int(chosen.sum())
    return selected


def _ssd(model: nn.Module, context: UnlearnContext, config: SsdConfig, quantity: str) -> nn.Module:
    forget, full, rho = _forget_and_full_importances(model, context, quantity, config)
    if config.alpha * rho >= 1:
        warnings.warn(
            f"{context.method}: alpha {config.alpha:g} >= |D|/|D_f| = {1 / rho:.2f}: "
            "no parameter can be selected, the model is returned unchanged",
            stacklevel=3,
        )
    dampen(model, forget, full, config.alpha, config.dampening)
    return model


@register(
    "ssd",
    SsdConfig,
    "dampen the weights far more important (Fisher) to the forget set than to the training set",
    label="SSD",
    reference=REFERENCE,
    needs=("retain", "forget"),
    knob=Knob("alpha", (2.0, 2.5, 3.0, 3.5), label="selection alpha"),
    space={"alpha": Param(1.5, 5.0), "dampening": Param(0.1, 10.0, log=True)},
    stochastic=False,
)
def ssd(model: nn.Module, context: UnlearnContext, config: SsdConfig) -> nn.Module:
    return _ssd(model, context, config, "fisher")


@register(
    "lfssd",
    SsdConfig,
    "label-free SSD: importances from the gradient of the squared output, no labels",
    label="LFSSD",
    reference="Foster et al., Loss-Free Machine Unlearning, ICLR 2024 Tiny Paper (SSD README)",
    needs=("retain", "forget"),
    knob=Knob("alpha", (2.0, 2.5, 3.0, 3.5), label="selection alpha"),
    space={"alpha": Param(1.5, 5.0), "dampening": Param(0.1, 10.0, log=True)},
    stochastic=False,
)
def lfssd(model: nn.Module, context: UnlearnContext, config: SsdConfig) -> nn.Module:
    return _ssd(model, context, config, "output_norm")


def adaptive_alpha(forget: dict, full: dict, rho: float) -> float:
    """ASSD's alpha: the (100 - ln(1 + 100 rho))-th percentile of the finite ratios I_f / I_D."""
    with torch.no_grad():
        ratios = torch.cat([(forget[name] / full[name]).flatten().cpu() for name in forget]).numpy()
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
    forget, full, rho = _forget_and_full_importances(model, context, "fisher", config)
    dampen(model, forget, full, adaptive_alpha(forget, full, rho), config.dampening)
    return model
