"""The one training loop (``fit``) and prediction helper used by every model and every unlearning method.

``fit`` trains any PyTorch regression model with an L1 (MAE) loss and Adam, optionally early-stopping on
validation MAE and restoring the best epoch. Data come as DataLoaders, or as datasets that ``make_loader``
turns into seeded loaders. ``ArrayDataset`` serves whole batches from in-memory tensors (cached
embeddings, activations or images), which is what makes CPU training fast.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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


@dataclass
class FitConfig:
    """One training run. ``patience=None`` trains exactly ``epochs`` epochs (as unlearning methods do)."""

    epochs: int = 200
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = 15
    seed: int = 0
    device: str = "auto"
    progress: bool = False

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("device", "progress")}


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
    model.eval().to(device)
    outputs, targets = [], []
    for x, y in as_loader(data, batch_size, shuffle=False, seed=0):
        outputs.append(model(x.to(device)).reshape(-1).float().cpu())
        targets.append(torch.as_tensor(y).reshape(-1).float())
    model.train(was_training)
    if not outputs:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)
    return torch.cat(outputs).numpy(), torch.cat(targets).numpy()


def predict(model: nn.Module, data: DataLoader | Dataset, batch_size: int = 1024, device: str = "auto") -> np.ndarray:
    """Predictions of ``model`` in eval mode, shape (n,)."""
    return predict_with_targets(model, data, batch_size, device)[0]


def mean_absolute_error(model: nn.Module, data: DataLoader | Dataset, device: str = "auto") -> float:
    predictions, targets = predict_with_targets(model, data, device=device)
    return float(np.abs(predictions - targets).mean())


def fit(
    model: nn.Module,
    train: DataLoader | Dataset,
    val: DataLoader | Dataset | None = None,
    config: FitConfig | None = None,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = l1_loss,
    log_path: str | Path | None = None,
    description: str = "training",
    stop_when: Callable[[nn.Module, int], bool] | None = None,
) -> FitResult:
    """Train ``model`` in place with Adam on ``loss_fn``; early-stop on validation MAE when ``patience``.

    With early stopping the weights of the best validation epoch are restored before returning.
    ``stop_when(model, epoch)``, checked after every epoch, ends training early when it returns True.
    """
    config = config or FitConfig()
    if config.patience is not None and val is None:
        raise ValueError("early stopping (patience) needs validation data")
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    model.to(device)
    train_loader = as_loader(train, config.batch_size, shuffle=True, seed=config.seed)
    val_loader = as_loader(val, 1024, shuffle=False, seed=0) if val is not None else None
    parameters = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel is several times faster for small models on the CPU and exists on CUDA too.
    optimizer = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay, fused=device.type in ("cpu", "cuda"))
    result = FitResult(model=model)
    best_state, waited = None, 0
    started = time.perf_counter()
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "a") if log_path else None
    bar = tqdm(range(1, config.epochs + 1), desc=description, unit="epoch", disable=not config.progress, leave=False)
    try:
        for epoch in bar:
            model.train()
            total, count = 0.0, 0
            for x, y in train_loader:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = loss_fn(model(x).reshape(-1), y.float())
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += loss.item() * len(y)
                count += len(y)
            record = {"epoch": epoch, "train_loss": total / max(count, 1)}
            if val_loader is not None:
                record["val_mae"] = mean_absolute_error(model, val_loader, device=str(device))
            record["seconds"] = round(time.perf_counter() - started, 3)
            result.history.append(record)
            if log:
                log.write(json.dumps({"run": description, **record}) + "\n")
            bar.set_postfix({k: round(v, 3) for k, v in record.items() if k in ("train_loss", "val_mae")})
            if stop_when is not None and stop_when(model, epoch):
                break
            if config.patience is None or val_loader is None:
                continue
            if result.best_val_mae is None or record["val_mae"] < result.best_val_mae:
                result.best_val_mae, result.best_epoch, waited = record["val_mae"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                waited += 1
                if waited >= config.patience:
                    break
    finally:
        bar.close()
        if log:
            log.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result
