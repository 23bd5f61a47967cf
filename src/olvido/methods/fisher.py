"""Fisher forgetting (Golatkar et al., CVPR 2020): Gaussian noise shaped by the inverse diagonal Fisher of
the retain set, then a short fine-tuning on the retain set.

From the original code (``AdityaGolatkar/SelectiveForgetting`` as copied into ``meghdadk/SCRUB``'s
``small_scale_unlearning.ipynb`` ``hessian``/``get_mean_var`` and ``if-loops/selective-synaptic-dampening``
``forget_random_strategies.py`` ``FisherForgetting``): on the retain set, batch size 1, accumulate the
expected Fisher F (mean over samples of sum_y p(y|x) (d CE(x, y)/dtheta)^2); per parameter
var = clamp(1 / (F + 1e-8), max 1e3), clamped at 1e2 for the last layer, times ``alpha``; weight
matrices take the mean of var over dim 1 (one variance per output unit); var is multiplied by 10 for the
last layer and for one-dimensional parameters (BatchNorm, biases); theta <- theta_0 + sqrt(var) N(0, 1).
alpha is 1e-6 in ``FisherForgetting`` (1e-7 in SCRUB's notebooks); there is no fine-tuning there.

Regression adaptation (METHODS.md section 3.6): for a scalar output the expected Fisher needs one
gradient per sample, not one per class: F = mean_i (df(x_i)/dtheta)^2 / b^2, the Fisher of a Laplace
likelihood (the L1 loss) with its maximum-likelihood scale b = the original's retain MAE, so ``noise``
does not depend on the unit of the labels (years or decades). F comes from ``olvido.methods.importance``,
by default with random signs drawn from the run's seed (unbiased, one backward per batch: about one
training epoch) rather than exactly (``per_sample``, about 10x that on convolutions); the noise is random
anyway. The "last layer" is the output layer found by module (``layers.output_layer``), not the
original's ``size(0) == num_classes`` test, which would match every 1-row tensor of a regressor. Only
trainable parameters get noise. A short fine-tuning on the retain set follows (METHODS.md: 1-2 epochs
to recover utility; default 2 epochs, Adam 1e-3, batch 64, and in a study the model's own training
recipe, like FT). The knob is ``noise`` (alpha), on a log grid around the original's 1e-6. The clamp
gives parameters the retain set does not use (dead units, F < 1e-3) noise of standard deviation
sqrt(1e3 alpha) whatever their scale (x sqrt(10) for one-dimensional ones): at large alpha that, not the
Fisher shape, is what breaks the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.methods.base import LEARNING_RATE, Knob, Param, UnlearnConfig, UnlearnContext, register
from olvido.methods.importance import batch_for, check_options, importances
from olvido.methods.layers import output_layer
from olvido.training import fit


@dataclass
class FisherConfig(UnlearnConfig):
    epochs: int = 2  # the fine-tuning after the noise (0: the original's noise only)
    lr: float = 1e-3
    batch_size: int = 64
    noise: float = 1e-6  # alpha: variance = alpha / Fisher, the original's 1e-6
    estimator: str = "random_sign"  # or "per_sample": exact, about 10x the cost on convolutions
    draws: int = 100  # random-sign batches over the retain set: relative sd of F about sqrt(2 / draws) = 0.14

    def __post_init__(self) -> None:
        super().__post_init__()
        check_options(self.estimator, self.draws)


def fisher_variances(model: nn.Module, fisher: dict[str, torch.Tensor], noise: float) -> dict[str, torch.Tensor]:
    """The original's noise variance of every trainable parameter from its diagonal Fisher."""
    try:
        layer = output_layer(model)
        last = {id(p) for p in layer.parameters()}
    except OlvidoError:  # no trainable Linear layer: no last-layer special case
        last = set()
    parameters = dict(model.named_parameters())
    variances = {}
    for name, information in fisher.items():
        parameter = parameters[name]
        is_last = id(parameter) in last
        variance = (1.0 / (information + 1e-8)).clamp(max=1e2 if is_last else 1e3) * noise
        if parameter.ndim > 1:  # one variance per output unit, as the original
            variance = variance.mean(dim=1, keepdim=True).expand_as(parameter)
        if is_last or parameter.ndim == 1:
            variance = variance * 10
        variances[name] = variance
    return variances


@register(
    "fisher",
    FisherConfig,
    "add noise where the retain set's Fisher information is low, then fine-tune on the retain set",
    label="Fisher",
    reference="Golatkar et al., CVPR 2020 (AdityaGolatkar/SelectiveForgetting)",
    needs=("retain",),
    knob=Knob("noise", (1e-7, 1e-6, 1e-5, 1e-4), label="noise alpha"),
    space={"noise": Param(1e-8, 1e-3, log=True), "epochs": Param(1, 5, integer=True), "lr": LEARNING_RATE},
    continues_recipe=True,
)
def fisher(model: nn.Module, context: UnlearnContext, config: FisherConfig) -> nn.Module:
    device = context.device
    information = importances(
        model,
        context.retain,
        "fisher",
        estimator=config.estimator,
        batch_size=batch_for(context.retain, config.draws),
        device=device,
        seed=config.seed,
    )
    scale = context.retain_mae**2  # Laplace Fisher: divide by b^2, b = the retain MAE
    variances = fisher_variances(model, {k: v / scale for k, v in information.items()}, config.noise)
    # one CPU generator per run: the same seed draws the same noise on any device
    generator = torch.Generator().manual_seed(7919 * config.seed + 31)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, variance in variances.items():
            parameter = parameters[name]
            draw = torch.randn(parameter.shape, generator=generator).to(parameter)
            parameter.add_(variance.sqrt().to(parameter) * draw)
    fit(model, context.retain, None, config.fit_config(), description="fisher")
    return model
