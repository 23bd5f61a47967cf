"""The unlearning API: ``unlearn(method, model, retain, forget, val, config) -> Unlearned``.

Every method is a function with the NeurIPS 2023 challenge's signature ``(model, retain, forget, val, cfg)
-> model``, where ``retain``, ``forget`` and ``val`` are PyTorch DataLoaders or datasets of ``(x, y)``
pairs, registered under a name together with a dataclass config whose defaults are documented. Methods
work on any PyTorch regression model returning shape (batch,). ``unlearn`` copies the model first (the
caller's model is never modified), applies the method to each member of an ``Ensemble`` independently
(as the thesis unlearned each of its three models), and times the call.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, fields, replace
from typing import Callable

from torch import nn
from torch.utils.data import DataLoader, Dataset

from olvido.models.ensemble import Ensemble, member_seed
from olvido.storage import OlvidoError
from olvido.training import FitConfig

Data = DataLoader | Dataset


@dataclass
class UnlearnConfig:
    """Fields every method shares. ``lr``/``batch_size`` default to the head scope's training recipe."""

    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    progress: bool = False

    def fit_config(self, patience: int | None = None) -> FitConfig:
        return FitConfig(
            epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, patience=patience,
            seed=self.seed, device=self.device, progress=self.progress,
        )

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("device", "progress") and not callable(getattr(self, f.name))}


MethodFunction = Callable[[nn.Module, Data, Data, Data, UnlearnConfig], nn.Module]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    function: MethodFunction
    config_class: type[UnlearnConfig]
    summary: str


METHODS: dict[str, MethodSpec] = {}


def register(name: str, config_class: type[UnlearnConfig], summary: str) -> Callable[[MethodFunction], MethodFunction]:
    def decorator(function: MethodFunction) -> MethodFunction:
        if name in METHODS:
            raise ValueError(f"unlearning method {name!r} registered twice")
        METHODS[name] = MethodSpec(name, function, config_class, summary)
        return function

    return decorator


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise OlvidoError(f"unlearning method {name!r}: expected one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def config_for(method: str, recipe: FitConfig, epochs: int | None = None, seed: int = 0, device: str = "auto") -> UnlearnConfig:
    """A method's config continuing a model's training recipe (its learning rate and batch size), as the
    thesis fine-tuned with its training recipe; ``epochs=None`` keeps the method's default."""
    config = get_method(method).config_class(lr=recipe.lr, batch_size=recipe.batch_size, seed=seed, device=device)
    return replace(config, epochs=epochs) if epochs else config


@dataclass
class Unlearned:
    model: nn.Module
    method: str
    config: UnlearnConfig
    seconds: float


def unlearn(method: str, model: nn.Module, retain: Data, forget: Data, val: Data, config: UnlearnConfig | None = None) -> Unlearned:
    """Apply a registered method to a copy of ``model`` and time it."""
    spec = get_method(method)
    config = config or spec.config_class()
    if not isinstance(config, spec.config_class):
        raise OlvidoError(f"method {method!r} takes a {spec.config_class.__name__}, got {type(config).__name__}")
    started = time.perf_counter()
    if isinstance(model, Ensemble):
        members = [
            spec.function(copy.deepcopy(member), retain, forget, val, replace(config, seed=member_seed(config.seed, index)))
            for index, member in enumerate(model.members)
        ]
        result: nn.Module = Ensemble(members)
    else:
        result = spec.function(copy.deepcopy(model), retain, forget, val, config)
    return Unlearned(result.eval(), method, config, time.perf_counter() - started)


def dataset_of(data: Data) -> Dataset:
    return data.dataset if isinstance(data, DataLoader) else data
