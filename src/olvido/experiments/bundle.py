"""Deployable model bundles: one file holding a model's weights and everything needed to account for them.

A bundle (``.olvido``) holds the whole deployable model's weights (the frozen part and the trained part:
``deployable_state``) and JSON metadata: the architecture, the manifest hash and how to rebuild that
dataset, the training recipe (model, pretraining and fit configs, seed), the ids it was trained on and
early-stopped on, every id deleted from it since, with the augmented copies that left with them, and its
lineage (parent model hash, request id, generation). It is written with ``torch.save`` of plain containers
and read with ``weights_only=True`` (``checkpoint.py``): loading never runs code from the file.

A SISA model (``olvido sisa train --export``) is bundled the same way, with its SISA configuration: its
deletions are then exact (``olvido forget`` retrains the affected slices).

``weights_sha256`` (over every tensor's name, dtype, shape and bytes) is checked on load, so weights
changed behind the metadata's back fail clearly; ``model_hash`` (over the metadata, which includes the
weights hash) is the model's identity in the deletion ledger, so any change to either shows there.

    bundle = export_bundle(workspace, workspace.original(seed=0), data="path/to/UTKFace.tar.gz")
    save_bundle(bundle, "model.olvido")
    bundle = load_bundle("model.olvido")
    workspace = bundle.workspace(prepared)        # the recipe's workspace; checks manifest and backbone
    model = bundle.trained_model(workspace)       # the trained part, as the study's methods take it
"""

from __future__ import annotations

import datetime
import os
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from olvido import __version__
from olvido.checkpoint import checkpoint_bytes, load_checkpoint, state_sha256
from olvido.data.manifest import PreparedData
from olvido.data.protocol import AugmentLimits, ProtocolConfig
from olvido.errors import OlvidoError
from olvido.experiments.sisa import Sisa, SisaConfig, SisaModel, SisaResult
from olvido.experiments.workspace import ModelConfig, TrainedModel, Workspace
from olvido.models.pretrain import PretrainConfig
from olvido.storage import atomic_write_bytes, stable_hash
from olvido.training import FitConfig

FORMAT = "olvido-bundle-1"
SUFFIX = ".olvido"
FROZEN, TRAINED = "0.", "1."  # key prefixes of the deployable model (frozen part, trained part)


@dataclass(frozen=True)
class Bundle:
    meta: dict
    state: dict[str, torch.Tensor]

    @cached_property
    def model_hash(self) -> str:
        """The model's identity: a hash of the metadata, which holds the weights' hash."""
        return stable_hash(self.meta, length=64)

    @property
    def sisa(self) -> SisaConfig | None:
        """The SISA configuration of a SISA model's bundle (deletions are then exact: ``Sisa.fit``)."""
        return SisaConfig(**self.meta["sisa"]) if self.meta.get("sisa") else None

    @property
    def scope(self) -> str:
        return self.meta["recipe"]["model"]["scope"]

    @property
    def deleted(self) -> np.ndarray:
        """Original ids deleted from this model so far (their augmented copies left with them)."""
        return np.array(self.meta["deleted"]["ids"], dtype=np.int64)

    @property
    def data_ids(self) -> np.ndarray:
        """Every id the model was trained or early-stopped on, deleted ones included."""
        return np.array(self.meta["train_ids"] + self.meta["val_ids"], dtype=np.int64)

    def prepare(self, data=None, cache=None, progress: bool = True) -> PreparedData:
        """The bundle's dataset, from ``data`` (default: the path recorded at export); fails unless the
        manifest is the one the model was trained on."""
        from olvido.data import prepare_dataset  # the data layer's reader, imported where it is needed

        source = self.meta["data"]
        data = data if data is not None else source["path"]
        protocol = dict(source["protocol"])
        protocol["augment"] = AugmentLimits(**protocol["augment"])
        prepared = prepare_dataset(data, ProtocolConfig(**protocol), source["image_size"], cache, progress)
        if prepared.manifest.hash != self.meta["manifest"]:
            raise OlvidoError(
                f"--data {data}: gives manifest {prepared.manifest.hash}, but the model was trained on manifest "
                f"{self.meta['manifest']}; expected the dataset it was exported with ({source['path']})"
            )
        return prepared

    def workspace(self, prepared: PreparedData, cache=None, progress: bool = True, device="auto") -> Workspace:
        """The workspace of the bundle's recipe; fails unless it rebuilds the bundle's frozen part exactly."""
        recipe = self.meta["recipe"]
        workspace = Workspace(
            prepared,
            ModelConfig(**recipe["model"]),
            fit_config=FitConfig(**recipe["fit"]),
            pretrain_config=PretrainConfig(**recipe["pretrain"]),
            cache=cache,
            progress=progress,
            device=device,
        )
        if workspace.architecture != self.meta["architecture"]:
            raise OlvidoError(
                f"bundle architecture {self.meta['architecture']} differs from its recipe's "
                f"{workspace.architecture}; expected a bundle written by olvido's export"
            )
        frozen = workspace.parts[0].state_dict()
        stored = {k[len(FROZEN) :]: v for k, v in self.state.items() if k.startswith(FROZEN)}
        if frozen.keys() != stored.keys() or any(not torch.equal(frozen[k], stored[k]) for k in frozen):
            raise OlvidoError(
                "the bundle's frozen backbone differs from the one its recipe rebuilds from the cache; "
                "expected the same pretrained backbone (the same cache or pretraining recipe)"
            )
        return workspace

    def trained_model(self, workspace: Workspace) -> nn.Module:
        """The trained part (the ensemble the methods unlearn, or the SISA model), loaded from the bundle."""
        if self.sisa is not None:
            shards = [workspace.new_member(seed=0) for _ in range(self.sisa.shards)]
            model = SisaModel(shards, self.sisa.aggregation, workspace.label_range)
        else:
            model = workspace.new_model(seed=0)
        model.load_state_dict({k[len(TRAINED) :]: v for k, v in self.state.items() if k.startswith(TRAINED)})
        return model.eval()

    def child(self, workspace: Workspace, model: nn.Module, deletion: dict, lineage: dict, method: dict) -> "Bundle":
        """This model after a deletion: ``model`` (trained part), the deleted ids added to the record."""
        meta = dict(self.meta)
        deleted = self.meta["deleted"]
        meta["deleted"] = {
            key: sorted(set(deleted[key]) | set(deletion[key]), key=str if key == "files" else int)
            for key in ("ids", "files", "copies")
        }
        meta.update(lineage=lineage, method=method, created=_now())
        return _bundle(workspace, model, meta)


def deployable_state(workspace: Workspace, model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in workspace.deployable(model).state_dict().items()}


def _bundle(workspace: Workspace, model: nn.Module, meta: dict) -> Bundle:
    state = deployable_state(workspace, model)
    return Bundle({**meta, "weights_sha256": state_sha256(state)}, state)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def export_bundle(workspace: Workspace, trained: TrainedModel, data: str | os.PathLike | None) -> Bundle:
    """A bundle of the original model a workspace trained (``Workspace.original``)."""
    if trained.meta.get("manifest") != workspace.prepared.manifest.hash:
        raise OlvidoError(f"{trained.path}: trained on another manifest; expected {workspace.prepared.manifest.hash}")
    if trained.meta.get("role", "original") != "original" or trained.meta.get("forget") is not None:
        raise OlvidoError(f"{trained.path}: only an original model (trained on the whole train split) can be exported")
    meta = _meta(workspace, data, trained.meta["seed"], workspace.split_ids("train"), workspace.split_ids("val"))
    return _bundle(workspace, trained.model, meta)


def export_sisa_bundle(sisa: Sisa, result: SisaResult, data: str | os.PathLike | None) -> Bundle:
    """A bundle of a SISA model trained on the whole train split (``Sisa.train``); its deletions are exact."""
    workspace = sisa.ws
    meta = _meta(workspace, data, sisa.config.seed, workspace.split_ids("train"), [])
    meta["sisa"] = asdict(sisa.config)
    return _bundle(workspace, result.model, meta)


def _meta(workspace: Workspace, data, seed: int, train_ids, val_ids) -> dict:
    return {
        "format": FORMAT,
        "olvido": __version__,
        "created": _now(),
        "data": {
            "path": _data_path(data),
            "source_id": workspace.prepared.faces.source_id,
            "image_size": workspace.prepared.faces.image_size,
            "protocol": workspace.prepared.manifest.meta["protocol"],
        },
        "manifest": workspace.prepared.manifest.hash,
        "architecture": workspace.architecture,
        "recipe": {
            "model": asdict(workspace.model_config),
            "pretrain": asdict(workspace.pretrain_config),
            "fit": workspace.fit_config.to_dict(),
            "seed": seed,
        },
        "sisa": None,
        "train_ids": sorted(int(i) for i in train_ids),
        "val_ids": sorted(int(i) for i in val_ids),
        "deleted": {"ids": [], "files": [], "copies": []},
        "lineage": {"parent": None, "request_id": None, "generation": 0},
        "method": None,
    }


def _data_path(data: str | os.PathLike | None) -> str | None:
    """The dataset as given, made absolute when it is a path (a later forget may run elsewhere)."""
    if data is None or str(data).startswith("synthetic"):
        return None if data is None else str(data)
    return str(Path(data).resolve())


def bundle_bytes(bundle: Bundle) -> bytes:
    return checkpoint_bytes(bundle.state, bundle.meta, FORMAT)


def save_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    path = Path(path)
    atomic_write_bytes(path, bundle_bytes(bundle))
    return path


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read a bundle (``weights_only``); fails when its weights do not match its metadata."""
    state, meta = load_checkpoint(path, format=FORMAT)
    missing = [key for key in ("weights_sha256", "recipe", "architecture", "manifest", "deleted") if key not in meta]
    if missing:
        raise OlvidoError(f"{path}: bundle metadata lacks {', '.join(missing)}; expected a bundle from olvido export")
    if state_sha256(state) != meta["weights_sha256"]:
        raise OlvidoError(
            f"{path}: the weights do not match the bundle's recorded weights hash; the file was changed or damaged"
        )
    return Bundle(meta, state)


def bundle_file_hash(path: str | os.PathLike) -> str:
    """The model hash of the bundle at ``path`` (for ``Ledger.verify``); a damaged bundle hashes to a message."""
    try:
        return load_bundle(path).model_hash
    except OlvidoError as error:
        return f"unreadable: {error}"
