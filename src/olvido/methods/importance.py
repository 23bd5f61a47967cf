"""Diagonal parameter importances (mean squared per-sample gradients) for Fisher forgetting and SSD/LFSSD/ASSD.

The classification originals accumulate squared gradients of cross-entropy: Golatkar's Fisher per sample
(batch size 1, one backward per class), SSD per mini-batch (``(grad of the batch-mean CE)^2``). For a
regression model with a scalar output ``f`` the counterparts are (METHODS.md sections 0, 3.5, 3.6), each
a mean over samples of a squared per-sample gradient:

- ``fisher``: mean_i (df(x_i)/dtheta)^2, the Fisher of a Gaussian or Laplace likelihood up to the noise
  scale (1/sigma^2 or 1/b^2, left to the caller). It needs no labels, and it equals the mean squared
  per-sample gradient of the L1 loss, since d|f - y| = sign(f - y) df. One gradient per sample, not one
  per class.
- ``squared_error``: mean_i (d(f(x_i) - y_i)^2/dtheta)^2 = mean_i (2 e_i df_i)^2, weighting each sample by
  its squared error.
- ``output``: the label-free output f itself (per-sample weight 1, like ``fisher``), for LFSSD with the
  ``batch_abs`` estimator. LFSSD's original differentiates ``||f(x)||^2``; for a scalar output in target
  units that is 2 f df, which weighs every sample by its prediction (4 f^2 once squared: an age bias of
  about x9 between 20 and 60 years), while classification logits carry no such offset.

Never the gradient of a batch-mean *loss*: for L1 it sums sign(e_i) df_i, which cancels across samples with
opposite-sign errors, so a well-fitted model would look unimportant everywhere (METHODS.md section 0).
Three estimators:

- ``per_sample`` (exact): every per-sample gradient, batched by ``torch.func`` (``functional_call`` +
  ``vmap`` + ``grad``), or one backward per sample for models vmap cannot trace. It materialises a
  (samples x parameters) block: on the ``last`` scope's MobileNetV2 stage + head (2.5M parameters) it
  costs about 10 training epochs over the same samples (measured, CPU).
- ``random_sign`` (unbiased, the default of the methods): per batch, the squared gradient of
  sum_i s_i quantity_i with random signs s_i = +-1. E[(sum_i s_i g_i)^2] = sum_i g_i^2 since the cross
  terms have mean 0: no cancellation bias, at the cost of one backward per batch (the original's cost:
  a pass costs about one training epoch over the same samples at batch 32-64, 1.5 at batch 16). Its
  relative standard deviation per parameter is about sqrt(2 / number of batches), whatever their size.
- ``batch_abs`` (LFSSD's original estimator): the mean over batches of |gradient of the batch-mean
  quantity|, ``imp += grad.abs()`` in the SSD README's LFSSD patch. Not a mean over samples: its value
  depends on the batch size (the caller uses one batch size for the sets it compares); with the
  label-free ``output`` there are no error signs to cancel.

Only trainable parameters (``requires_grad``) are measured; the model is in eval mode throughout, so
BatchNorm uses (and never updates) its running statistics and dropout is off.
"""

from __future__ import annotations

import math
import warnings

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader

from olvido.errors import OlvidoError
from olvido.training import as_loader, to_channels_last

QUANTITIES = ("fisher", "squared_error", "output")
ESTIMATORS = ("per_sample", "random_sign", "batch_abs")
# Elements of the (samples x trainable parameters) gradient block held at once: 2^24 floats = 64 MiB, so a
# 2.2M-parameter MobileNetV2 takes 7 samples per vmap call and a small head the whole batch.
GRADIENT_BUDGET = 1 << 24


def check_options(estimator: str, draws: int) -> None:
    """A config's ``estimator`` and ``draws`` fields, checked when the config is made (one-line errors)."""
    if estimator not in ESTIMATORS:
        raise OlvidoError(f"estimator {estimator!r}: expected one of {', '.join(ESTIMATORS)}")
    if int(draws) != draws or draws < 1:
        raise OlvidoError(f"draws {draws!r}: expected a whole number >= 1")


def batch_for(data, draws: int) -> int:
    """The batch size that cuts ``data`` into about ``draws`` batches: with random signs, the relative
    standard deviation of every importance is then about sqrt(2 / draws) whatever the set's size (0.14
    for 100), and the cost one backward per batch."""
    size = len(data.dataset) if isinstance(data, DataLoader) else len(data)
    return max(1, math.ceil(size / draws))


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters a method may change, by name."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def _sample_weights(quantity: str, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """d(quantity_i)/df_i: the factor turning df_i/dtheta into the gradient of sample i's quantity."""
    if quantity == "squared_error":
        return 2 * (outputs - targets.to(outputs))
    return torch.ones_like(outputs)  # fisher and output: df_i/dtheta itself


def _vmap_gradients(model, trainable, frozen, buffers, x):
    """Outputs (n,) and per-sample output gradients {name: (n, *shape)} of one chunk, batched by vmap."""

    def output(params, sample):
        value = functional_call(model, (params, frozen, buffers), (sample.unsqueeze(0),)).reshape(-1)
        if value.numel() != 1:
            raise ValueError(f"expected one output per sample, got {value.numel()}")
        return value[0], value[0]

    gradients, outputs = vmap(grad(output, has_aux=True), in_dims=(None, 0))(trainable, x)
    return outputs.detach(), gradients


def _loop_gradients(model, trainable, x):
    """The same by one backward per sample, for models vmap cannot trace."""
    names, params = list(trainable), list(trainable.values())
    outputs, gradients = [], {name: [] for name in names}
    for sample in x:
        value = model(sample.unsqueeze(0)).reshape(-1)
        if value.numel() != 1:
            raise ValueError(f"expected one output per sample, got {value.numel()}")
        for name, g in zip(names, torch.autograd.grad(value[0], params, allow_unused=True)):
            gradients[name].append(torch.zeros_like(trainable[name]) if g is None else g)
        outputs.append(value.detach())
    return torch.cat(outputs), {name: torch.stack(g) for name, g in gradients.items()}


def _combined_gradients(model, trainable, x, y, quantity, coefficients):
    """sum_i c_i d(quantity_i)/dtheta for the coefficients ``coefficients(outputs)`` returns (random signs
    s_i = +-1, or 1/n for the gradient of the batch mean): one backward for the whole batch."""
    outputs = model(to_channels_last(x)).reshape(-1)
    if outputs.numel() != len(y):
        raise ValueError(f"expected one output per sample, got {outputs.numel()} for {len(y)} samples")
    weights = coefficients(outputs) * _sample_weights(quantity, outputs.detach(), y)
    names, params = list(trainable), list(trainable.values())
    gradients = torch.autograd.grad((weights * outputs).sum(), params, allow_unused=True)
    return {name: torch.zeros_like(p) if g is None else g for name, p, g in zip(names, params, gradients)}


def importances(
    model: nn.Module,
    data,
    quantity: str = "fisher",
    *,
    estimator: str = "per_sample",
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    seed: int = 0,
    vectorize: bool = True,
) -> dict[str, torch.Tensor]:
    """Mean over the samples of ``data`` of each trainable parameter's squared per-sample gradient of
    ``quantity``, by parameter name; float32 on ``device``.

    ``estimator="per_sample"`` computes every per-sample gradient (exact; ``batch_size`` samples load at a
    time, fewer per vmap call for large models, see ``GRADIENT_BUDGET``; ``vectorize=False`` forces one
    backward per sample). ``"random_sign"`` squares, per batch, the gradient of sum_i s_i quantity_i with
    random signs s_i = +-1 drawn from ``seed``: E[(sum_i s_i g_i)^2] = sum_i g_i^2 because the cross terms
    s_i s_j (i != j) have mean 0, so it is unbiased at the cost of one backward per batch (what the
    original's batch gradients cost). Its relative standard deviation is about sqrt(2 batch_size / n) per
    parameter: small batches buy precision. ``"batch_abs"`` averages |gradient of the batch mean| over
    batches (LFSSD's original; depends on ``batch_size``). A DataLoader keeps its own batches."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity {quantity!r}: expected one of {', '.join(QUANTITIES)}")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator {estimator!r}: expected one of {', '.join(ESTIMATORS)}")
    device = torch.device(device)
    was_training = model.training
    model.to(device).eval()
    parameters = trainable_parameters(model)
    trainable = {name: p.detach() for name, p in parameters.items()}
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    buffers = dict(model.named_buffers())
    totals = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in trainable.items()}
    size = sum(p.numel() for p in trainable.values())
    chunk = max(1, min(batch_size, GRADIENT_BUDGET // max(size, 1)))
    generator = torch.Generator().manual_seed(seed)
    count, batches = 0, 0
    try:
        for x, y in as_loader(data, batch_size, shuffle=False, seed=0):
            x, y = x.to(device), torch.as_tensor(y).reshape(-1).to(device)
            count, batches = count + len(y), batches + 1
            if estimator == "batch_abs":  # |gradient of the batch mean|
                mean = lambda outputs: torch.full_like(outputs, 1 / len(outputs))  # noqa: E731
                for name, g in _combined_gradients(model, parameters, x, y, quantity, mean).items():
                    totals[name] += g.float().abs()
                continue
            if estimator == "random_sign":  # (sum_i s_i g_i)^2 with random signs s_i = +-1

                def signs(outputs):
                    return (torch.randint(0, 2, (len(outputs),), generator=generator) * 2 - 1).to(outputs)

                for name, g in _combined_gradients(model, parameters, x, y, quantity, signs).items():
                    totals[name] += g.float().square()
                continue
            for start in range(0, len(y), chunk):
                xs, ys = x[start : start + chunk], y[start : start + chunk]
                if vectorize:
                    try:
                        outputs, gradients = _vmap_gradients(model, trainable, frozen, buffers, xs)
                    except (RuntimeError, NotImplementedError) as error:
                        # some models use operations vmap has no batching rule for (olvido's MirrorAverage
                        # converts to channels-last memory)
                        warnings.warn(
                            f"per-sample gradients by vmap failed ({error}); one backward per sample", stacklevel=2
                        )
                        vectorize = False
                if not vectorize:
                    outputs, gradients = _loop_gradients(model, parameters, xs)
                weights = _sample_weights(quantity, outputs, ys)
                for name, g in gradients.items():
                    totals[name] += (g.float() * weights.view(-1, *[1] * (g.ndim - 1))).square().sum(0)
    finally:
        model.train(was_training)
    per = batches if estimator == "batch_abs" else count
    return {name: total / max(per, 1) for name, total in totals.items()}


def mixture(parts: list[tuple[dict[str, torch.Tensor], int]]) -> dict[str, torch.Tensor]:
    """The importances of the union of disjoint sets from each set's importances and size (a mean over
    samples is the size-weighted mean of the parts' means): SSD's full-data importance from its retain and
    forget importances, without a second pass over the forget set."""
    total = sum(n for _, n in parts)
    return {name: sum(part[name] * (n / total) for part, n in parts) for name in parts[0][0]}
