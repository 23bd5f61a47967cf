"""Checkpoints: a state_dict plus JSON metadata, written atomically, read back with ``weights_only=True``.

The metadata names what the weights belong to (architecture, scope, manifest hash, forget set, configs);
``load_checkpoint`` refuses a checkpoint whose metadata disagrees with what the caller expects, so a
model is never silently used with another dataset or architecture.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from olvido.errors import OlvidoError
from olvido.storage import atomic_path

FORMAT = "olvido-checkpoint-1"


def save_checkpoint(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict) -> Path:
    path = Path(path)
    payload = {
        "format": FORMAT,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": json.dumps(meta, sort_keys=True),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def safe_load(path: str | os.PathLike, expected: str = "an olvido checkpoint"):
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.exists():
        raise OlvidoError(f"{path}: no such checkpoint; expected {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with objects, a truncated or foreign file
        raise OlvidoError(f"{path}: not a readable checkpoint ({type(error).__name__}); expected {expected}") from None


def load_checkpoint(path: str | os.PathLike, expect: dict | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, meta)``; every key of ``expect`` must equal the stored metadata's."""
    path = Path(path)
    payload = safe_load(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise OlvidoError(f"{path}: not an olvido checkpoint (expected format {FORMAT})")
    meta = json.loads(payload["meta"])
    for key, value in (expect or {}).items():
        if json.dumps(meta.get(key), sort_keys=True) != json.dumps(value, sort_keys=True):
            raise OlvidoError(
                f"{path}: checkpoint is for {key}={meta.get(key)!r}, not {value!r}; "
                "it belongs to another dataset or architecture"
            )
    return payload["state_dict"], meta
