"""Checkpoints: a state_dict plus JSON metadata, written atomically, read back with ``weights_only=True``.

The metadata names what the weights belong to (architecture, scope, manifest hash, forget set, configs);
``load_checkpoint`` refuses a checkpoint whose metadata disagrees with what the caller expects, so a
model is never silently used with another dataset or architecture.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import torch

from olvido.errors import OlvidoError
from olvido.storage import atomic_write_bytes

FORMAT = "olvido-checkpoint-1"


def checkpoint_bytes(state_dict: dict[str, torch.Tensor], meta: dict, format: str = FORMAT) -> bytes:
    """The file's bytes: plain containers of tensors and strings, loadable with ``weights_only=True``."""
    payload = {
        "format": format,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "meta": json.dumps(meta, sort_keys=True),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def save_checkpoint(
    path: str | os.PathLike, state_dict: dict[str, torch.Tensor], meta: dict, format: str = FORMAT
) -> Path:
    path = Path(path)
    atomic_write_bytes(path, checkpoint_bytes(state_dict, meta, format))
    return path


def state_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def safe_load(path: str | os.PathLike, expected: str = "an olvido checkpoint"):
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, never arbitrary objects."""
    path = Path(path)
    if not path.exists():
        raise OlvidoError(f"{path}: no such checkpoint; expected {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a pickle with objects, a truncated or foreign file
        raise OlvidoError(f"{path}: not a readable checkpoint ({type(error).__name__}); expected {expected}") from None


def load_checkpoint(
    path: str | os.PathLike, expect: dict | None = None, format: str = FORMAT
) -> tuple[dict[str, torch.Tensor], dict]:
    """Return ``(state_dict, meta)``; every key of ``expect`` must equal the stored metadata's."""
    path = Path(path)
    payload = safe_load(path, expected=f"a file in format {format}")
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise OlvidoError(f"{path}: not in format {format} (found {_format_of(payload)})")
    try:
        meta = json.loads(payload["meta"])
        state = payload["state_dict"]
    except (KeyError, TypeError, json.JSONDecodeError):
        raise OlvidoError(f"{path}: damaged metadata; expected JSON metadata and a state_dict") from None
    for key, value in (expect or {}).items():
        if json.dumps(meta.get(key), sort_keys=True) != json.dumps(value, sort_keys=True):
            raise OlvidoError(
                f"{path}: checkpoint is for {key}={meta.get(key)!r}, not {value!r}; "
                "it belongs to another dataset or architecture"
            )
    return state, meta


def _format_of(payload) -> str:
    return repr(payload.get("format")) if isinstance(payload, dict) else type(payload).__name__
