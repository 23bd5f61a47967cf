"""The one training loop (``fit``) and prediction helper used by every model and every unlearning method.

``fit`` trains any PyTorch regression model with an L1 (MAE) loss and Adam, optionally early-stopping on
validation MAE and restoring the best epoch. Data come as DataLoaders, or as datasets that ``make_loader``
turns into seeded loaders. ``ArrayDataset`` serves whole batches from in-memory tensors (cached
embeddings, activations or images), which is what makes CPU training fast.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from olvido.metrics.thesis import mean_absolute_error


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU. Choosing CUDA makes its kernels deterministic."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        make_cuda_deterministic()
    return device


def make_cuda_deterministic() -> None:
    """Same config and seed, same numbers, on CUDA too. cuDNN's autotuner and the atomics in some backward
    kernels (convolutions, index_add) otherwise change the last digits from run to run, and those grow over
    an epoch. cuBLAS needs a fixed workspace for the same guarantee; the variable is read when its first
    handle is made, which is why the device is chosen here, before any work runs on it. Operations with no
    deterministic kernel warn instead of failing."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


class ArrayDataset(Dataset):
    """Samples ``(x[i], y[i])`` from tensors; ``uint8`` image inputs are scaled to [0, 1] floats, NCHW.

    Implements ``__getitems__`` so a DataLoader fetches a whole batch with one indexing operation.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor | np.ndarray, ids: np.ndarray | None = None):
        targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        if targets.ndim != 1 or len(targets) != len(inputs):
            raise ValueError(f"targets must have shape ({len(inputs)},), got {tuple(targets.shape)}")
        self.inputs = inputs
        self.targets = targets
        self.ids = np.arange(len(inputs)) if ids is None else np.asarray(ids)

    def __len__(self) -> int:
        return len(self.targets)

    def _x(self, index) -> torch.Tensor:
        x = self.inputs[index]
        if x.dtype == torch.uint8:  # images stored as uint8 [.., H, W, 3]
            x = x.movedim(-1, -3).float().div_(255)
        return x

    def __getitem__(self, index: int):
        return self._x(index), self.targets[index]

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        return self._x(index), self.targets[index]


class Relabeled(Dataset):
    """``base``'s inputs with other targets (shape ``(n,)``, or ``(n, k)`` for steps that need more per sample)."""

    def __init__(self, base: Dataset, targets: torch.Tensor | np.ndarray):
        self.base = base
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.float32)
        if len(self.targets) != len(base):
            raise ValueError(f"targets: expected {len(base)} rows, got {len(self.targets)}")

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.base[index][0], self.targets[index]

    def __getitems__(self, indices: list[int]):
        return fetch_batch(self.base, indices)[0], self.targets[torch.as_tensor(indices, dtype=torch.long)]


def fetch_batch(dataset: Dataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` for ``indices`` of any dataset: one ``__getitems__`` call when it has one."""
    if hasattr(dataset, "__getitems__"):
        return dataset.__getitems__(indices)
    return torch.utils.data.default_collate([dataset[i] for i in indices])


class ConcatSamples(Dataset):
    """Datasets one after another, fetching batches from each part with ``fetch_batch``."""

    def __init__(self, parts: list[Dataset]):
        self.parts = parts
        self.offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int):
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.parts[part][index - int(self.offsets[part])]

    def __getitems__(self, indices: list[int]):
        indices = np.asarray(indices)
        part_of = np.searchsorted(self.offsets, indices, side="right") - 1
        xs, ys, order = [], [], []
        for part in np.unique(part_of):
            positions = np.flatnonzero(part_of == part)
            x, y = fetch_batch(self.parts[part], (indices[positions] - self.offsets[part]).tolist())
            xs.append(x), ys.append(torch.as_tensor(y)), order.append(positions)
        inverse = torch.as_tensor(np.argsort(np.concatenate(order)))
        return torch.cat(xs)[inverse], torch.cat(ys)[inverse]


def _batch_collate(batch):
    return batch if isinstance(batch, tuple) else torch.utils.data.default_collate(batch)


def make_loader(dataset: Dataset, batch_size: int = 32, shuffle: bool = False, seed: int = 0) -> DataLoader:
    """A DataLoader whose shuffling order depends only on ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, collate_fn=_batch_collate)


def one_batch_loader(dataset: Dataset, batch_size: int, seed: int = 0) -> DataLoader:
    """A loader whose every pass is ONE random batch: with ``fit``, "epochs" count optimiser steps."""
    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(dataset, num_samples=batch_size, generator=generator)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=_batch_collate)


def as_loader(data: DataLoader | Dataset, batch_size: int, shuffle: bool, seed: int) -> Iterable:
    return data if isinstance(data, DataLoader) else make_loader(data, batch_size, shuffle, seed)


OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "linear")


@dataclass
class FitConfig:
    """One training run. ``patience=None`` trains exactly ``epochs`` epochs (as unlearning methods do).

    ``optimizer``: ``adam`` (weight decay as an L2 term, torch's Adam), ``adamw`` (decoupled decay) or
    ``sgd`` (with ``momentum``). ``freeze_batchnorm`` keeps BatchNorm statistics fixed while training.
    ``schedule``: ``constant``, ``cosine`` or ``linear``: a linear warm-up over ``warmup_epochs``, then a
    cosine or linear decay to 0 at ``epochs`` (per optimiser step; early stopping may end training first).
    """

    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 15
    seed: int = 0
    device: str = "auto"
    progress: bool = False
    optimizer: str = "adam"
    schedule: str = "constant"
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    freeze_batchnorm: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r}: expected one of {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r}: expected one of {', '.join(SCHEDULES)}")
        if not 0 <= self.warmup_epochs <= max(self.epochs, 0):
            raise ValueError(f"warmup_epochs {self.warmup_epochs}: expected between 0 and epochs ({self.epochs})")

    def to_dict(self) -> dict:
        """The fields that change the trained weights (device and progress do not)."""
        return {k: v for k, v in asdict(self).items() if k not in ("device", "progress")}


def make_optimizer(parameters: list[nn.Parameter], config: FitConfig, device: torch.device) -> torch.optim.Optimizer:
    # The fused kernels are several times faster for small models on the CPU and exist on CUDA too.
    fused = device.type in ("cpu", "cuda")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay, fused=fused
        )
    kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return kind(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=fused)


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0-based) of ``total_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    progress = min((step - warmup_steps) / max(1, total_steps - warmup_steps), 1.0)
    if schedule == "linear":
        return 1.0 - progress
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """NHWC memory for 4-d inputs: about 1.5-2x faster MobileNetV2 convolutions on the CPU (measured)."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def prefer_channels_last(model: nn.Module) -> nn.Module:
    if any(p.ndim == 4 for p in model.parameters()):
        model.to(memory_format=torch.channels_last)
    return model


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_mae: float | None = None
    seconds: float = 0.0


def l1_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if prediction.shape != target.shape:  # (n,1) vs (n,) would broadcast to an n x n matrix
        raise ValueError(f"prediction shape {tuple(prediction.shape)} != target shape {tuple(target.shape)}")
    return (prediction - target).abs().mean()


@torch.no_grad()
def predict_with_targets(
    model: nn.Module, data: DataLoader | Dataset, batch_size: int = 1024, device: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Predictions of ``model`` in eval mode and the targets, both float arrays of shape (n,)."""
    device = resolve_device(device)
    was_training = model.training
    prefer_channels_last(model.eval().to(device))
    outputs, targets = [], []
    for x, y in as_loader(data, batch_size, shuffle=False, seed=0):
        outputs.append(model(to_channels_last(x.to(device))).reshape(-1).float().cpu())
        targets.append(torch.as_tensor(y).reshape(-1).float())
    model.train(was_training)
    if not outputs:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    return torch.cat(outputs).numpy(), torch.cat(targets).numpy()


def predict(model: nn.Module, data: DataLoader | Dataset, batch_size: int = 1024, device: str = "auto") -> np.ndarray:
    """Predictions of ``model`` in eval mode, shape (n,)."""
    return predict_with_targets(model, data, batch_size, device)[0]


def model_mae(model: nn.Module, data: DataLoader | Dataset, device: str = "auto") -> float:
    """MAE of ``model`` on ``data`` (in eval mode)."""
    return mean_absolute_error(*reversed(predict_with_targets(model, data, device=device)))


StepFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Phase:
    """One pass of an epoch: every batch of ``data`` goes through ``step(model, x, y) -> loss`` (default:
    ``fit``'s loss on the model's predictions). ``batch_size`` defaults to the config's."""

    data: DataLoader | Dataset
    step: StepFn | None = None
    batch_size: int | None = None


@dataclass
class StepHooks:
    """Calls around every optimiser step: ``after_backward(model)`` may edit gradients (masks, scaling),
    ``after_step(model)`` may edit weights (restore masked-out ones)."""

    after_backward: Callable[[nn.Module], None] | None = None
    after_step: Callable[[nn.Module], None] | None = None


def cycle_batches(
    data: DataLoader | Dataset, batch_size: int, seed: int, device: str | torch.device = "cpu"
) -> Iterator:
    """Endless shuffled ``(x, y)`` batches of ``data`` on ``device`` (a new order every pass), for steps that
    pair each batch of one set with a batch of another (NegGrad+'s retain and forget batches)."""
    loader = as_loader(data, batch_size, shuffle=True, seed=seed)
    while True:
        for x, y in loader:
            yield to_channels_last(x.to(device)), y.to(device)


def set_train_mode(model: nn.Module, freeze_batchnorm: bool) -> None:
    """Training mode, with BatchNorm layers kept in eval mode (running statistics frozen) when asked."""
    model.train()
    if freeze_batchnorm:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()


class EarlyStopping:
    """Tracks the best validation MAE, keeps its weights, and says when ``patience`` epochs passed without one."""

    def __init__(self, patience: int | None):
        self.patience = patience
        self.best_mae: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict | None = None
        self.waited = 0

    def should_stop(self, model: nn.Module, epoch: int, val_mae: float | None) -> bool:
        if self.patience is None or val_mae is None:
            return False
        if self.best_mae is None or val_mae < self.best_mae:
            self.best_mae, self.best_epoch, self.waited = val_mae, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.waited += 1
        return self.waited >= self.patience


def fit(
    model: nn.Module,
    train: DataLoader | Dataset,
    val: DataLoader | Dataset | None = None,
    config: FitConfig | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = l1_loss,
    log_path: str | Path | None = None,
    description: str = "training",
    stop_when: Callable[[nn.Module, int], bool] | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    step: StepFn | None = None,
    phases: Callable[[int], Sequence[Phase]] | None = None,
    hooks: StepHooks | None = None,
) -> FitResult:
    """Train ``model`` in place (Adam, AdamW or SGD); early-stop on validation MAE when ``patience``.

    An epoch is one pass over ``train`` with ``step`` (default: ``loss_fn`` on the predictions), or the
    passes ``phases(epoch)`` returns (SCRUB alternates forget and retain passes). With early stopping the
    weights of the best validation epoch are restored before returning. ``stop_when(model, epoch)``,
    checked after every epoch, ends training early when it returns True. ``augment(x)`` transforms every
    training batch (on the device, drawing from torch's seeded RNG); validation and prediction never see
    it. ``hooks`` run after every backward pass and optimiser step.
    """
    config = config or FitConfig()
    if config.patience is not None and val is None:
        raise ValueError("early stopping (patience) needs validation data")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    prefer_channels_last(model.to(device))
    default_step = step or (lambda m, x, y: loss_fn(m(x).reshape(-1), y.float()))
    plan = phases or (lambda epoch: [Phase(train, default_step)])
    loaders: dict[int, Iterable] = {}

    def loader_of(phase: Phase) -> Iterable:
        if id(phase.data) not in loaders:  # one loader per data set: its shuffling continues across epochs
            loaders[id(phase.data)] = as_loader(
                phase.data, phase.batch_size or config.batch_size, True, config.seed + len(loaders)
            )
        return loaders[id(phase.data)]

    val_loader = as_loader(val, 1024, shuffle=False, seed=0) if val is not None else None
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config, device)
    scheduler = _scheduler(optimizer, config, sum(len(loader_of(p)) for p in plan(1)))
    hooks = hooks or StepHooks()
    result, stopping = FitResult(model=model), EarlyStopping(config.patience)
    started = time.perf_counter()
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a") if log_path else None
    bar = tqdm(range(1, config.epochs + 1), desc=description, unit="epoch", disable=not config.progress, leave=False)
    try:
        for epoch in bar:
            set_train_mode(model, config.freeze_batchnorm)
            total, count = 0.0, 0
            for phase in plan(epoch):
                phase_step = phase.step or default_step
                for x, y in loader_of(phase):
                    x, y = to_channels_last(x.to(device, non_blocking=True)), y.to(device, non_blocking=True)
                    if augment is not None:
                        x = to_channels_last(augment(x))
                    loss = phase_step(model, x, y)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if hooks.after_backward is not None:
                        hooks.after_backward(model)
                    optimizer.step()
                    if hooks.after_step is not None:
                        hooks.after_step(model)
                    if scheduler is not None:
                        scheduler.step()
                    total += loss.item() * len(y)
                    count += len(y)
            record = {"epoch": epoch, "train_loss": total / max(count, 1)}
            if val_loader is not None:
                record["val_mae"] = model_mae(model, val_loader, device=str(device))
            record["seconds"] = round(time.perf_counter() - started, 3)
            result.history.append(record)
            if log:
                log.write(json.dumps({"run": description, **record}) + "\n")
            bar.set_postfix({k: round(v, 3) for k, v in record.items() if k in ("train_loss", "val_mae")})
            if stop_when is not None and stop_when(model, epoch):
                break
            if stopping.should_stop(model, epoch, record.get("val_mae")):
                break
    finally:
        bar.close()
        if log:
            log.close()
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
    result.best_epoch, result.best_val_mae = stopping.best_epoch, stopping.best_mae
    result.seconds = time.perf_counter() - started
    return result


def _scheduler(optimizer: torch.optim.Optimizer, config: FitConfig, steps_per_epoch: int):
    """The per-step learning-rate schedule (``None`` for a constant rate without warm-up)."""
    if config.schedule == "constant" and config.warmup_epochs == 0:
        return None
    total_steps, warmup_steps = config.epochs * steps_per_epoch, round(config.warmup_epochs * steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, total_steps, warmup_steps, config.schedule)
    )
