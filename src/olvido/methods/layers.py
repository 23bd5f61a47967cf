"""Finding the parts of any regression model that methods reset, mask, distil or probe.

Works on olvido's models (``AgeRegressor`` = body + head, possibly inside ``MirrorAverage``) and on any
foreign ``nn.Module``: "trainable" means having parameters that require gradients, so a method touches
exactly what its scope lets it train. The output layer is the last trainable ``nn.Linear``: its output is
the pre-sigmoid logit of the thesis head (the prediction itself for a linear output), its input the
penultimate features.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from olvido.errors import OlvidoError
from olvido.models.heads import AgeRegressor

WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Activation modules: what ends a block (weighted layer -> [normalisation] -> activation)
ACTIVATIONS = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Tanh,
    nn.Softplus,
)


def is_trainable(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


def trainable_layers(model: nn.Module) -> list[nn.Module]:
    """Modules owning trainable parameters, in registration (forward) order."""
    return [m for m in model.modules() if is_trainable(m)]


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """Trainable convolution and linear layers."""
    return [m for m in trainable_layers(model) if isinstance(m, WEIGHTED)]


def output_layer(model: nn.Module) -> nn.Linear:
    linears = [m for m in trainable_layers(model) if isinstance(m, nn.Linear)]
    if not linears:
        raise OlvidoError(f"{type(model).__name__}: expected a model with a trainable nn.Linear output layer")
    return linears[-1]


def head_of(model: nn.Module) -> nn.Module:
    """The regression head: an ``AgeRegressor``'s ``head``, else the output layer."""
    for module in model.modules():
        if isinstance(module, AgeRegressor):
            return module.head
    return output_layer(model)


def first_layer(model: nn.Module) -> nn.Module:
    """The first trainable layer that can be re-initialised."""
    for module in trainable_layers(model):
        if hasattr(module, "reset_parameters"):
            return module
    raise OlvidoError(f"{type(model).__name__}: no trainable layer to reset")


def hidden_layers(model: nn.Module) -> list[nn.Module]:
    """Trainable convolution and linear layers before the output layer: where activations are compared."""
    output = output_layer(model)
    return [m for m in weighted_layers(model) if m is not output]


def block_outputs(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the trainable blocks' outputs (weighted layer -> [norm] -> activation):
    the activation modules between the first trainable weighted layer and the output layer, in registration
    order. A model whose activations are functional calls has none of these modules: its hidden weighted
    layers' raw outputs stand in."""
    weighted = weighted_layers(model)
    if not weighted:
        return []
    output = output_layer(model)
    modules = list(model.modules())
    first, last = modules.index(weighted[0]), modules.index(output)
    blocks = [m for m in modules[first:last] if isinstance(m, ACTIVATIONS)]
    return blocks or hidden_layers(model)


def counterpart(module: nn.Module, model: nn.Module, other: nn.Module) -> nn.Module:
    """The submodule of ``other`` (a copy of ``model``, e.g. its frozen teacher) at ``module``'s place in ``model``."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return other.get_submodule(name)
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(model).__name__}")


class OutputTap:
    """Records the output layer's input (penultimate features) and output (logit) at every forward pass.

    ``like``: a model of the same architecture whose trainable output layer locates the layer to tap
    in ``model`` (a frozen teacher has no trainable layers of its own)."""

    def __init__(self, model: nn.Module, like: nn.Module | None = None):
        self.layer = output_layer(model) if like is None else counterpart(output_layer(like), like, model)
        self.features: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None
        self._handle = None

    def _hook(self, module, inputs, output) -> None:
        self.features, self.logits = inputs[0], output.reshape(-1)

    def __enter__(self) -> "OutputTap":
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()


@contextlib.contextmanager
def activations(layers: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collects the outputs of ``layers`` at each forward pass (cleared by the caller)."""
    store: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda m, i, o: store.append(o)) for layer in layers]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()
