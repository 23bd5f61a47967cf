"""The frozen part of a model, run once per image and cached: what makes CPU training fast.

For the ``head`` scope the cache holds pooled backbone features, for ``last`` the stem's activations; for
``all`` nothing is frozen and the "features" are the uint8 images themselves (not cached: they already are).
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from olvido.storage import atomic_path, cache_dir
from olvido.training import prefer_channels_last, resolve_device, to_channels_last


@torch.no_grad()
def run_frozen(
    frozen: nn.Module,
    images: np.ndarray,
    batch_size: int = 256,
    device: str = "auto",
    progress: bool = True,
    description: str = "extracting features",
) -> torch.Tensor:
    """``frozen`` applied in eval mode to uint8 [n, S, S, 3] images, as a float32 CPU tensor."""
    device = resolve_device(device)
    prefer_channels_last(frozen.eval().to(device))
    outputs = []
    for start in tqdm(
        range(0, len(images), batch_size), desc=description, unit="batch", disable=not progress, leave=False
    ):
        batch = torch.from_numpy(images[start : start + batch_size]).to(device)
        batch = to_channels_last(batch.permute(0, 3, 1, 2).float().div_(255))
        outputs.append(frozen(batch).float().cpu().contiguous())
    return torch.cat(outputs)


def cached_features(
    key: str,
    frozen: nn.Module,
    images: Callable[[], np.ndarray],
    cache: str | os.PathLike | None = None,
    device: str = "auto",
    progress: bool = True,
) -> torch.Tensor:
    """``run_frozen`` output stored as ``features/<key>.npy``; the caller's key must name all it depends on.
    ``images()`` is called only when the features are not cached (rebuilding augmented copies takes seconds)."""
    path = cache_dir(cache) / "features" / f"{key}.npy"
    if path.exists():
        return torch.from_numpy(np.load(path))
    features = run_frozen(frozen, images(), device=device, progress=progress)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features.numpy())
    return features
