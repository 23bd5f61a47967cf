"""The unlearning API: ``unlearn(method, model, retain, forget, val, config) -> Unlearned``.

``unlearn`` keeps the NeurIPS 2023 challenge's signature: ``retain``, ``forget`` and ``val`` are PyTorch
DataLoaders or datasets of ``(x, y)`` pairs, and the model is any PyTorch regression model returning shape
(batch,). Behind it, every method is one function ``method(model, context, config) -> model`` in its own
file, registered with a ``MethodSpec`` that declares what it needs, which scopes it supports, whether it is
stochastic, the knob a study sweeps for it, whether it continues the model's training recipe, a one-line
summary and its reference. ``unlearn`` copies the model (the caller's is never modified), builds the
``UnlearnContext`` (a frozen copy of the original as teacher, the label range, the forget samples' ids and
labels, a factory of fresh models, the device and the seed), applies the method to each member of an
``Ensemble`` independently (as the thesis unlearned each of its three models), and times the call.

A method only sees the data it declares: reading the forget or validation set without declaring it in
``needs`` fails.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, fields, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from olvido.errors import OlvidoError
from olvido.models.ensemble import Ensemble, member_seed
from olvido.training import OPTIMIZERS, FitConfig, model_mae, predict_with_targets, resolve_device

Data = DataLoader | Dataset
SCOPES = ("head", "last", "all")
NEEDS = ("retain", "forget", "val", "teacher", "new_model", "holdout")


@dataclass
class UnlearnConfig:
    """Fields every method shares; a method's subclass sets its own defaults (from its paper)."""

    epochs: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    optimizer: str = "adam"
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        if int(self.epochs) != self.epochs or self.epochs < 0:
            raise OlvidoError(f"epochs {self.epochs!r}: expected a whole number >= 0")
        if not self.lr > 0:
            raise OlvidoError(f"lr {self.lr!r}: expected a positive learning rate")
        if int(self.batch_size) != self.batch_size or self.batch_size < 1:
            raise OlvidoError(f"batch_size {self.batch_size!r}: expected a whole number >= 1")
        if self.optimizer not in OPTIMIZERS:
            raise OlvidoError(f"optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        self.epochs, self.batch_size = int(self.epochs), int(self.batch_size)

    def fit_config(self, patience: int | None = None, **overrides) -> FitConfig:
        """The training-loop settings of this config (``overrides`` replace any FitConfig field)."""
        base = FitConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            patience=patience,
            seed=self.seed,
            device=self.device,
            progress=self.progress,
        )
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        """The fields that change the result (device and progress do not): what cache keys hash."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("device", "progress")}


@dataclass(frozen=True)
class Knob:
    """The config field a study sweeps for a method, with its default sweep values."""

    name: str
    values: tuple
    label: str = ""

    @property
    def title(self) -> str:
        return self.label or self.name.replace("_", " ")


@dataclass(frozen=True)
class Param:
    """One hyperparameter's tuning range, ``[low, high]``: log-uniform with ``log``, whole numbers with
    ``integer`` (the Optuna distributions ``olvido tune`` samples from)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"tuning range [{self.low}, {self.high}]: expected low < high (and low > 0 if log)")

    def suggest(self, trial, name: str):
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


# The ranges most methods share (DeepUnlearn's, METHODS.md section 5, narrowed to Adam's useful rates and to
# ten epochs, its cap for UTKFace: 20% of the training epochs).
LEARNING_RATE = Param(1e-5, 1e-2, log=True)
EPOCHS = Param(1, 10, integer=True)

MethodFunction = Callable[[nn.Module, "UnlearnContext", UnlearnConfig], nn.Module]


@dataclass(frozen=True)
class MethodSpec:
    """Everything the study, the report and the CLI know about a method: nothing is special-cased elsewhere.

    ``continues_recipe``: the method continues the model's training recipe (its learning rate and batch
    size replace the method's own, as the thesis fine-tuned with its training recipe). ``per_member``:
    ``unlearn`` applies the method to each member of an ``Ensemble``.
    """

    name: str
    function: MethodFunction
    config_class: type[UnlearnConfig]
    summary: str
    label: str
    reference: str
    needs: frozenset[str] = frozenset({"retain"})
    scopes: tuple[str, ...] = SCOPES
    stochastic: bool = True
    knob: Knob = Knob("epochs", (2, 4, 8, 16))
    continues_recipe: bool = False
    per_member: bool = True
    space: tuple[tuple[str, Param], ...] = ()  # what ``olvido tune`` searches: config fields and their ranges

    def defaults(self) -> dict:
        return self.config_class().to_dict()

    def describe(self) -> dict:
        """A JSON-able description (``olvido methods --json``)."""
        return {
            "name": self.name,
            "label": self.label,
            "summary": self.summary,
            "reference": self.reference,
            "needs": sorted(self.needs),
            "scopes": list(self.scopes),
            "stochastic": self.stochastic,
            "knob": {"name": self.knob.name, "values": list(self.knob.values)},
            "continues_recipe": self.continues_recipe,
            "defaults": self.defaults(),
            "space": {name: vars(param) for name, param in self.space},
        }


METHODS: dict[str, MethodSpec] = {}


def register(
    name: str,
    config_class: type[UnlearnConfig],
    summary: str,
    *,
    label: str,
    reference: str,
    needs: tuple[str, ...] = ("retain",),
    scopes: tuple[str, ...] = SCOPES,
    stochastic: bool = True,
    knob: Knob = Knob("epochs", (2, 4, 8, 16)),
    continues_recipe: bool = False,
    per_member: bool = True,
    space: dict[str, Param] | None = None,
) -> Callable[[MethodFunction], MethodFunction]:
    """Register ``method(model, context, config) -> model`` under ``name`` (refuses duplicates). ``space``:
    the config fields ``olvido tune`` searches and their ranges (None: nothing to tune)."""
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"method {name!r}: unknown needs {sorted(unknown)}; expected some of {NEEDS}")
    field_names = {f.name for f in fields(config_class)}
    if knob.name not in field_names:
        raise ValueError(f"method {name!r}: knob {knob.name!r} is not a field of {config_class.__name__}")
    space = dict(space or {})
    if set(space) - field_names:
        raise ValueError(f"method {name!r}: tuning space {sorted(set(space) - field_names)} are not config fields")

    def decorator(function: MethodFunction) -> MethodFunction:
        if name in METHODS:
            raise ValueError(f"unlearning method {name!r} registered twice")
        METHODS[name] = MethodSpec(
            name,
            function,
            config_class,
            summary,
            label,
            reference,
            frozenset(needs),
            tuple(scopes),
            stochastic,
            knob,
            continues_recipe,
            per_member,
            tuple(space.items()),
        )
        return function

    return decorator


def list_methods(scope: str | None = None) -> list[str]:
    """Registered method names, sorted; with ``scope``, only those supporting it."""
    return sorted(name for name, spec in METHODS.items() if scope is None or scope in spec.scopes)


def get_method(name: str) -> MethodSpec:
    if name not in METHODS:
        raise OlvidoError(f"unlearning method {name!r}: expected one of {', '.join(sorted(METHODS))}")
    return METHODS[name]


def make_config(method: str, **values) -> UnlearnConfig:
    """A method's config with some fields set; an unknown field is a one-line error."""
    spec = get_method(method)
    names = [f.name for f in fields(spec.config_class)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise OlvidoError(
            f"method {method!r}: unknown config field {', '.join(map(repr, unknown))}; "
            f"expected some of {', '.join(names)}"
        )
    return spec.config_class(**values)


def config_for(
    method: str, recipe: FitConfig, knob_value=None, seed: int = 0, device: str = "auto", **values
) -> UnlearnConfig:
    """A method's config for a study cell: its own defaults, the training recipe's learning rate and batch
    size only if the method continues the recipe, ``knob_value`` for its knob (``None``: its default; 0
    is a value, not "default"; a mapping: a whole configuration, such as a tuned one, in place of one
    knob value), and any other ``values``."""
    if isinstance(knob_value, dict):
        values, knob_value = {**knob_value, **values}, None
    spec = get_method(method)
    if spec.continues_recipe:
        values = {"lr": recipe.lr, "batch_size": recipe.batch_size, **values}
    if knob_value is not None:
        values[spec.knob.name] = knob_value
    return make_config(method, seed=seed, device=device, **values)


class _Unavailable(Dataset):
    """Stands in for data a method did not declare in ``needs``: any use fails loudly."""

    def __init__(self, method: str, what: str):
        self.message = f"method {method!r} read the {what} set without declaring {what!r} in its needs"

    def __len__(self) -> int:
        raise OlvidoError(self.message)

    def __getitem__(self, index):
        raise OlvidoError(self.message)

    def __getitems__(self, indices):
        raise OlvidoError(self.message)


def targets_of(data: Data) -> np.ndarray:
    """All targets of a dataset or loader, in order."""
    dataset = dataset_of(data)
    if hasattr(dataset, "targets"):
        return np.asarray(torch.as_tensor(dataset.targets), dtype=np.float32).reshape(-1)
    return np.concatenate(
        [np.asarray(y, dtype=np.float32).reshape(-1) for _, y in DataLoader(dataset, batch_size=1024)]
    )


def reinitialise(module: nn.Module, seed: int) -> nn.Module:
    """Fresh weights for every submodule of ``module`` that has ``reset_parameters``, drawn from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for submodule in module.modules():
            if hasattr(submodule, "reset_parameters") and any(True for _ in submodule.parameters(recurse=False)):
                submodule.reset_parameters()
    return module


@dataclass
class UnlearnContext:
    """What a method may use besides its config. ``teacher`` is a frozen eval-mode copy of the model being
    unlearned (for an ensemble, of this member); ``new_model(seed)`` builds a fresh model from the same
    starting point as the original (for olvido's models ``Workspace.new_member``; for a foreign model, a
    copy with every layer re-initialised); ``holdout`` (optional) holds unseen samples like the forget set."""

    method: str
    retain: Data
    forget: Data
    val: Data
    teacher: nn.Module
    label_range: tuple[float, float]
    seed: int
    device: torch.device
    forget_ids: np.ndarray | None = None
    forget_labels: np.ndarray | None = None
    new_model: Callable[[int], nn.Module] | None = None
    holdout: Data | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def fresh(self, module: nn.Module, salt: int = 0) -> nn.Module:
        """``module`` re-initialised in place from this run's seed (``salt`` separates several modules)."""
        return reinitialise(module, 7919 * self.seed + 104729 + salt)

    @property
    def retain_mae(self) -> float:
        """The teacher's MAE on the retain set: the unit that makes L1 terms O(1) (METHODS.md section 0)."""
        if "retain_mae" not in self._cache:
            self._cache["retain_mae"] = max(model_mae(self.teacher, self.retain, device=str(self.device)), 1e-3)
        return self._cache["retain_mae"]

    def clip(self, predictions: torch.Tensor) -> torch.Tensor:
        low, high = self.label_range
        return predictions.clamp(low, high)


@dataclass
class Unlearned:
    model: nn.Module
    method: str
    config: UnlearnConfig
    seconds: float


def unlearn(
    method: str,
    model: nn.Module,
    retain: Data,
    forget: Data,
    val: Data,
    config: UnlearnConfig | None = None,
    *,
    new_model: Callable[[int], nn.Module] | None = None,
    label_range: tuple[float, float] | None = None,
    holdout: Data | None = None,
) -> Unlearned:
    """Apply a registered method to a copy of ``model`` and time it (the NeurIPS 2023 signature).

    ``label_range`` defaults to the smallest and largest retain label (and forget label, for methods that
    read the forget set); ``new_model(seed)`` to a
    re-initialised copy of the model (give ``Workspace.new_member`` for olvido's pretrained models)."""
    spec = get_method(method)
    config = config or spec.config_class()
    if not isinstance(config, spec.config_class):
        raise OlvidoError(f"method {method!r} takes a {spec.config_class.__name__}, got {type(config).__name__}")
    started = time.perf_counter()
    forget_labels = targets_of(forget) if "forget" in spec.needs else None
    if label_range is None:
        # the forget labels count only for methods allowed to read the forget set
        known = np.concatenate([targets_of(retain)] + ([forget_labels] if forget_labels is not None else []))
        label_range = (float(known.min()), float(known.max()))
    forget_dataset = dataset_of(forget)
    shared = dict(
        method=method,
        retain=retain,
        forget=forget if "forget" in spec.needs else _Unavailable(method, "forget"),
        val=val if "val" in spec.needs else _Unavailable(method, "validation"),
        label_range=(float(label_range[0]), float(label_range[1])),
        device=resolve_device(config.device),
        forget_ids=getattr(forget_dataset, "ids", None) if "forget" in spec.needs else None,
        forget_labels=forget_labels,
        holdout=holdout if "holdout" in spec.needs else None,
    )

    def run(member: nn.Module, member_config: UnlearnConfig, factory) -> nn.Module:
        teacher = copy.deepcopy(member).eval()
        for parameter in teacher.parameters():
            parameter.requires_grad_(False)
        context = UnlearnContext(teacher=teacher, seed=member_config.seed, new_model=factory, **shared)
        return spec.function(copy.deepcopy(member), context, member_config)

    def factory_for(member: nn.Module):
        if new_model is not None:
            return new_model
        return lambda seed: reinitialise(copy.deepcopy(member), seed)

    if isinstance(model, Ensemble) and spec.per_member:
        members = [
            run(member, replace(config, seed=member_seed(config.seed, index)), factory_for(member))
            for index, member in enumerate(model.members)
        ]
        result: nn.Module = Ensemble(members)
    else:
        result = run(model, config, factory_for(model))
    return Unlearned(result.eval(), method, config, time.perf_counter() - started)


def dataset_of(data: Data) -> Dataset:
    return data.dataset if isinstance(data, DataLoader) else data


def check_max_samples(name: str, value) -> None:
    if value is not None and (int(value) != value or value < 1):
        raise OlvidoError(f"{name} {value!r}: expected None or a whole number >= 1")


def fixed_subset(data: Data, max_samples: int | None, seed: int) -> Data:
    """``data`` itself, or a subset of ``max_samples`` of its samples drawn once from ``seed`` (in their
    order): for statistics that are means or sums over samples (importances, saliency), estimated on a
    subset when the full pass costs too much. Fixed rather than drawn from the run's seed, so a method
    stays a function of the data."""
    size = len(dataset_of(data))
    if max_samples is None or size <= max_samples:
        return data
    rows = np.random.default_rng(seed).choice(size, max_samples, replace=False)
    return Subset(dataset_of(data), np.sort(rows).tolist())


def predictions_of(model: nn.Module, data: Data, device: torch.device | str = "auto") -> np.ndarray:
    """A model's predictions on a data set (eval mode)."""
    return predict_with_targets(model, data, device=str(device))[0]


__all__ = [
    "EPOCHS",
    "LEARNING_RATE",
    "METHODS",
    "Knob",
    "Param",
    "MethodSpec",
    "UnlearnConfig",
    "UnlearnContext",
    "Unlearned",
    "config_for",
    "get_method",
    "list_methods",
    "make_config",
    "register",
    "unlearn",
    "reinitialise",
    "targets_of",
]
