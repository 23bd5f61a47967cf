"""Weight saliency for SalUn and GradMask: which weights the forget set's predictions depend on, as a hard mask,
and the step hooks that let only those weights move.

From the original code (``OPTML-Group/Unlearn-Saliency``, ``Classification/generate_mask.py``,
``save_gradient_ratio``, at HEAD): with the model in eval mode, the gradient of the forget loss is summed
over the forget batches, its absolute value taken, every parameter of the model ranked in ONE global ranking
(``torch.cat`` of all tensors, not per layer), and the top ``t`` fraction marked 1 (files ``with_{t}.pt``;
the README's SalUn uses 0.5). During unlearning (``Classification/unlearn/RL.py``) the gradients are
multiplied by the mask after every backward pass, and after every optimiser step the masked-out weights are
put back to their starting values (``_restore_masked_params``, commit "Fix weight decay (#33)"), so that
neither momentum nor weight decay can move them.

Regression adaptation (METHODS.md sections 0 and 3.3): the per-sample gradient of the L1 loss is
``sign(f(x_i) - y_i) * grad f(x_i)``, so a summed or batch-mean L1 gradient cancels between samples whose
errors have opposite signs; on a well-fit model, where errors of both signs are equally common, the
forget-set gradient of a weight the forget predictions depend on heavily can be about 0. The squared error
does not cure this (its batch gradient is ``sum_i e_i * grad f(x_i)``, which cancels the same way, only
reweighted), so the saliency here is the sum of per-sample gradient magnitudes,
``sum_i |d L1(f(x_i), y_i) / d theta| = sum_i |d f(x_i) / d theta|``: the forget set's output sensitivity,
in which no sample can cancel another. Per-sample gradients come from ``torch.func`` (``vmap`` of ``grad``
over chunks of a batch), with a sample-by-sample loop for models ``vmap`` cannot trace. They cost about 10
training epochs per sample through a convolutional stage, so by default the sum runs over a fixed random
subset of at most 512 forget samples (``SALIENCY_SAMPLES``; the original sums over the whole forget set):
on the last scope's 1,617-image forget group 0 the subset took 9 s instead of 28 s, and its masks overlap
those from every sample at intersection over union 0.93-0.98 for mask ratios 0.1-0.7 (BENCHMARKS.md,
"Importances and saliency on a subset").

What is ranked: every parameter that requires gradients (``trainable_layers``), as the original ranks every
``named_parameters()`` entry (weights, biases, normalisation scales), in one global ranking as the original;
frozen parameters are outside the mask and never touched. No layer is special-cased (the output layer
competes with the rest like any other). With ``ratio`` 1 every trainable parameter moves, so SalUn becomes
RND and GradMask becomes FT.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap

from olvido.errors import OlvidoError
from olvido.methods.base import fixed_subset
from olvido.methods.layers import trainable_layers
from olvido.training import StepHooks, as_loader, to_channels_last

Mask = dict[nn.Parameter, torch.Tensor]

# Per-sample gradients of a chunk hold chunk x (trainable parameters) floats. 2**23 (32 MB) was as fast as
# larger chunks and as the loop on the CPU for the head-scope ThesisHead (about 2 ms a sample, measured).
PER_SAMPLE_FLOATS = 2**23


def ranked_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """The trainable parameters, by their names in ``model``, in forward order: what the mask ranks."""
    owned = {id(p) for layer in trainable_layers(model) for p in layer.parameters(recurse=False) if p.requires_grad}
    return {name: p for name, p in model.named_parameters() if id(p) in owned}


def _sample_loss(model: nn.Module, parameters: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    return (functional_call(model, parameters, (x.unsqueeze(0),)).reshape(()) - y).abs()


def _per_sample_magnitudes(model: nn.Module, parameters: dict[str, torch.Tensor], x, y) -> dict[str, torch.Tensor]:
    """sum over the batch of |per-sample gradient| for each parameter, by ``vmap`` over chunks."""
    size = sum(p.numel() for p in parameters.values())
    chunk = max(1, PER_SAMPLE_FLOATS // max(size, 1))
    per_sample = vmap(grad(lambda p, xi, yi: _sample_loss(model, p, xi, yi)), in_dims=(None, 0, 0))
    totals = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for start in range(0, len(y), chunk):
        grads = per_sample(parameters, x[start : start + chunk], y[start : start + chunk])
        for name, g in grads.items():
            totals[name] += g.abs().sum(0)
    return totals


def _looped_magnitudes(model: nn.Module, parameters: dict[str, nn.Parameter], x, y) -> dict[str, torch.Tensor]:
    """The same sums one sample at a time (models whose forward ``vmap`` cannot trace)."""
    names, tensors = list(parameters), list(parameters.values())
    totals = {name: torch.zeros_like(p) for name, p in parameters.items()}
    for xi, yi in zip(x, y):
        loss = (model(to_channels_last(xi.unsqueeze(0))).reshape(()) - yi).abs()
        for name, g in zip(names, torch.autograd.grad(loss, tensors, allow_unused=True)):
            if g is not None:
                totals[name] += g.abs()
    return totals


def saliency(model: nn.Module, data, batch_size: int, device: torch.device | str) -> dict[str, torch.Tensor]:
    """``sum_i |d L1(f(x_i), y_i) / d theta|`` over ``data`` for every trainable parameter (by name), in eval
    mode (as the original: BatchNorm statistics and dropout fixed). The model's training mode is restored."""
    parameters = ranked_parameters(model)
    if not parameters:
        raise OlvidoError(f"{type(model).__name__}: no trainable parameters to rank by saliency")
    was_training = model.training
    model.to(device).eval()
    detached = {name: p.detach() for name, p in parameters.items()}
    totals = {name: torch.zeros_like(p) for name, p in detached.items()}
    vectorised = True
    try:
        for x, y in as_loader(data, batch_size, shuffle=False, seed=0):
            x, y = x.to(device), torch.as_tensor(y).to(device).float().reshape(-1)
            if vectorised:
                try:
                    sums = _per_sample_magnitudes(model, detached, x, y)
                except (RuntimeError, NotImplementedError):
                    vectorised = False  # an operation without a batching rule: the loop from here on
            if not vectorised:
                sums = _looped_magnitudes(model, parameters, x, y)
            for name, value in sums.items():
                totals[name] += value
    finally:
        model.train(was_training)
    return totals


def check_ratio(ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise OlvidoError(f"mask_ratio {ratio!r}: expected a fraction in (0, 1]")


def top_fraction(scores: dict[str, torch.Tensor], ratio: float) -> dict[str, torch.Tensor]:
    """Boolean masks marking the ``ratio`` fraction of all entries with the largest score, ranked globally
    (one ranking across every tensor, as the original's ``torch.cat``); ties broken by position."""
    check_ratio(ratio)
    flat = torch.cat([s.flatten() for s in scores.values()])
    chosen = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    # stable descending sort: equal scores keep their order, so the mask does not depend on sort internals
    chosen[torch.sort(flat, descending=True, stable=True).indices[: int(flat.numel() * ratio)]] = True
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = chosen[start : start + s.numel()].view_as(s)
        start += s.numel()
    return masks


# Saliency is a sum over forget samples of exact per-sample gradients, about 10 training epochs' cost per
# sample through a convolutional stage: 28 s on the last scope's 1,617-image forget group 0, about a
# retraining. A fixed subset of this many samples: 9 s, masks overlapping at IoU 0.93-0.98 (BENCHMARKS.md).
SALIENCY_SAMPLES = 512
SUBSET_SEED = 7919


def saliency_mask(
    model: nn.Module,
    data,
    ratio: float,
    batch_size: int,
    device: torch.device | str,
    max_samples: int | None = SALIENCY_SAMPLES,
) -> Mask:
    """The SalUn mask of ``model`` on ``data``: True for the ``ratio`` most salient trainable weights,
    the saliency summed over a fixed subset of at most ``max_samples`` samples (None: every sample)."""
    data = fixed_subset(data, max_samples, SUBSET_SEED)
    masks = top_fraction(saliency(model, data, batch_size, device), ratio)
    parameters = ranked_parameters(model)
    return {parameters[name]: mask for name, mask in masks.items()}


def masked_update_hooks(mask: Mask) -> StepHooks:
    """Step hooks under which only the weights marked in ``mask`` move: gradients of the others are zeroed
    after every backward pass, and the others are put back to their values of now after every optimiser
    step (weight decay and momentum act inside ``step()``, after the gradient mask, so zeroing alone would
    let them drift; restoring every step also means stale momentum never accumulates an effect)."""
    start = {p: p.detach().clone() for p in mask}

    # ``fit`` moves the model to its device after the mask was made (on the CPU, say): follow the weights.
    def zero_unmasked_gradients(model: nn.Module) -> None:
        for p, keep in mask.items():
            if p.grad is not None:
                p.grad.mul_(keep.to(p.device))

    def restore_unmasked_weights(model: nn.Module) -> None:
        with torch.no_grad():
            for p, keep in mask.items():
                p.copy_(torch.where(keep.to(p.device), p, start[p].to(p.device)))

    return StepHooks(after_backward=zero_unmasked_gradients, after_step=restore_unmasked_weights)
