"""A workspace binds a prepared dataset to a model recipe and trains, caches and loads its models.

It owns the expensive shared state, built once and cached on disk: the (face-pretrained) backbone, the
frozen part's outputs for every manifest row, and every trained model, keyed by the hash of (manifest,
backbone, model and fit configs, forget set, seed). Asking for a model again loads it; nothing is trained
twice.

    ws = Workspace(prepared)                      # head scope, MobileNetV2 pretrained on left-out faces
    original = ws.original(seed=0)                # M_O: ensemble of 3, trained on train, early-stopped on val
    forget = parse_forget(prepared.manifest, "group:0")
    retrained = ws.retrained(forget, seed=0)      # M_R^0: trained on retain-train, early-stopped on retain-val
    ws.evaluate(original.model)                   # test MAE overall and per age group
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch import nn

from olvido.checkpoint import load_checkpoint, save_checkpoint
from olvido.data.forget import ForgetSplit
from olvido.data.manifest import PreparedData
from olvido.data.protocol import FORGET_GROUPS
from olvido.errors import OlvidoError
from olvido.methods import Unlearned, config_for, unlearn
from olvido.metrics.thesis import absolute_errors
from olvido.models.backbones import SCOPES, build_backbone, split_for_scope
from olvido.models.ensemble import Ensemble, member_seed
from olvido.models.features import cached_features
from olvido.models.heads import AgeRegressor, ThesisHead
from olvido.models.mirror import MirrorAverage, MirrorViews
from olvido.models.pretrain import PretrainConfig, pretrain_backbone
from olvido.storage import cache_dir, file_sha256, stable_hash
from olvido.training import ArrayDataset, FitConfig, fit, predict


@dataclass(frozen=True)
class ModelConfig:
    """The model recipe. ``init``: ``face`` (ImageNet, then face-pretrained on the left-out pool),
    ``imagenet``, ``none`` or a checkpoint path. ``ensemble``: members averaged (the thesis uses 3).
    ``mirror``: every member predicts the mean over a face and its mirror image (``models/mirror.py``);
    ``None`` (default) mirrors in the head scope only. Measured (BENCHMARKS.md, issue 8): M_O 4.65 -> 4.52
    years in the head scope, where the mirrored embeddings are cached once; in the `last` scope it cost
    68% more training time for no gain (4.77 -> 4.84)."""

    backbone: str = "mobilenet_v2"
    init: str = "face"
    scope: str = "head"
    age_scale: float = 60.0
    ensemble: int = 3
    mirror: bool | None = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise OlvidoError(f"scope {self.scope!r}: expected one of {', '.join(SCOPES)}")
        if self.ensemble < 1:
            raise OlvidoError(f"ensemble {self.ensemble}: expected at least 1 member")

    @property
    def mirrored(self) -> bool:
        return self.scope == "head" if self.mirror is None else self.mirror


# Fit recipes per scope. The thesis used Adam lr 1e-5, batch 32, patience 15 on the whole ResNet50. A head
# alone on frozen features learns well at lr 1e-3 with batch 256 and patience 10: measured on UTKFace,
# M_O test MAE 5.47 in 25 s for M_O + M_R^0 where batch 64 gave 5.59 in 64 s (CPU time is dominated by
# per-step costs). Training the last stage at 3e-4 keeps the pretrained weights from being washed out.
DEFAULT_FIT = {
    "head": FitConfig(epochs=200, batch_size=256, lr=1e-3, patience=10),
    "last": FitConfig(epochs=40, batch_size=64, lr=3e-4, patience=5),
    "all": FitConfig(epochs=40, batch_size=32, lr=1e-4, patience=5),
}

# Where membership attacks mean something: models trained to memorise their training faces, beside the
# early-stopped ones above. Issue 11's probe (not rerun here) trained the last stage 30 epochs without early
# stopping: train MAE 1.52 against test MAE 5.73 on UTKFace, and a loss-based attack on its training faces
# scored AUC 0.81. No head-scope recipe: in that probe, a head on the face-pretrained embeddings (nearly
# collapsed onto age) trained 500 epochs without dropout on 600 faces still had train MAE 4.9 against test 6.0.
MEMORISING_FIT = {
    "last": FitConfig(epochs=30, batch_size=64, lr=3e-4, patience=None),
}


@dataclass
class TrainedModel:
    model: nn.Module
    meta: dict
    path: Path
    from_cache: bool


@dataclass
class Workspace:
    prepared: PreparedData
    model_config: ModelConfig = field(default_factory=ModelConfig)
    fit_config: FitConfig | None = None
    pretrain_config: PretrainConfig | None = None
    cache: str | os.PathLike | None = None
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.fit_config is None:
            self.fit_config = DEFAULT_FIT[self.model_config.scope]
        if self.pretrain_config is None:
            self.pretrain_config = PretrainConfig(backbone=self.model_config.backbone)
        self.cache = cache_dir(self.cache)
        table = self.prepared.manifest.table
        self._row = {int(i): r for r, i in enumerate(table["id"].to_numpy())}
        self._ages = table["age"].to_numpy().astype(np.float32)

    # -- backbone and features -------------------------------------------------------------------
    @cached_property
    def backbone_source(self) -> tuple[str, str, dict | None]:
        """``(weights argument for build_backbone, identity for cache keys, pretraining report)``."""
        init = self.model_config.init
        if init == "face":
            path, report = pretrain_backbone(
                self.prepared.faces,
                self.prepared.manifest,
                self.pretrain_config,
                self.cache,
                self.progress,
                self.device,
            )
            return str(path), "face:" + path.stem.rsplit("-", 1)[-1], report
        if init == "none" or init.startswith("imagenet"):
            return init, init, None
        return init, "file:" + file_sha256(init), None

    @property
    def pretrain_report(self) -> dict | None:
        return self.backbone_source[2]

    @cached_property
    def parts(self) -> tuple[nn.Module, nn.Module, int]:
        """``(frozen, trainable body template, feature width)``; the backbone is seeded for ``init=none``."""
        torch.manual_seed(0)
        backbone = build_backbone(self.model_config.backbone, self.backbone_source[0])
        frozen, body = split_for_scope(backbone, self.model_config.scope)
        for parameter in frozen.parameters():
            parameter.requires_grad_(False)
        if self.model_config.mirrored and self.model_config.scope != "all":
            frozen = MirrorViews(frozen)
        return frozen, body, backbone.feature_dim

    @property
    def architecture(self) -> dict:
        config = self.model_config
        return {
            "backbone": config.backbone,
            "weights": self.backbone_source[1],
            "scope": config.scope,
            "head": "thesis",
            "age_scale": config.age_scale,
            "ensemble": config.ensemble,
            "image_size": self.prepared.faces.image_size,
            "mirror": config.mirrored,
        }

    @cached_property
    def inputs(self) -> torch.Tensor:
        """The trainable part's input for every manifest row, in row order."""
        if self.model_config.scope == "all":
            return torch.from_numpy(self.prepared.images())
        frozen_part = {k: v for k, v in self.architecture.items() if k not in ("ensemble", "head", "age_scale")}
        key = stable_hash({"manifest": self.prepared.manifest.hash, "frozen": frozen_part})
        return cached_features(
            f"{self.model_config.scope}-{key}",
            self.parts[0],
            self.prepared.images,
            self.cache,
            self.device,
            self.progress,
        )

    def with_ensemble(self, members: int) -> "Workspace":
        """The same dataset, recipe and cache with another ensemble size, sharing what is already loaded."""
        return self._sibling(replace(self.model_config, ensemble=members), self.fit_config)

    def with_fit(self, fit_config: FitConfig) -> "Workspace":
        """The same dataset, model and cache with another training recipe (its models are cached apart, as
        the recipe is part of every model's key), sharing what is already loaded."""
        return self._sibling(self.model_config, fit_config)

    def _sibling(self, model_config: ModelConfig, fit_config: FitConfig) -> "Workspace":
        other = Workspace(
            self.prepared,
            model_config,
            fit_config=fit_config,
            pretrain_config=self.pretrain_config,
            cache=self.cache,
            progress=self.progress,
            device=self.device,
        )
        for name in ("backbone_source", "parts", "inputs"):  # the frozen part does not depend on either change
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    def rows(self, ids: np.ndarray) -> np.ndarray:
        try:
            return np.array([self._row[int(i)] for i in ids], dtype=np.int64)
        except KeyError as error:
            raise OlvidoError(f"id {error.args[0]} is not in manifest {self.prepared.manifest.hash}") from None

    def ages(self, ids: np.ndarray) -> np.ndarray:
        return self._ages[self.rows(ids)]

    def dataset(self, ids: np.ndarray, targets: np.ndarray | None = None) -> ArrayDataset:
        rows = self.rows(ids)
        return ArrayDataset(self.inputs[rows], self._ages[rows] if targets is None else targets, np.asarray(ids))

    def split_ids(self, split: str) -> np.ndarray:
        return self.prepared.manifest.rows(split)["id"].to_numpy()

    # -- models ----------------------------------------------------------------------------------
    def new_member(self, seed: int) -> nn.Module:
        """A fresh trainable model: the scope's pretrained body and a head initialised from ``seed``
        (wrapped in ``MirrorAverage`` when the recipe mirrors)."""
        _, body, width = self.parts
        torch.manual_seed(seed)
        member = AgeRegressor(copy.deepcopy(body), ThesisHead(width, self.model_config.age_scale))
        if self.model_config.mirrored:
            return MirrorAverage(member, views_given=self.model_config.scope != "all")
        return member

    def new_model(self, seed: int) -> Ensemble:
        return Ensemble([self.new_member(member_seed(seed, m)) for m in range(self.model_config.ensemble)])

    def deployable(self, model: nn.Module) -> nn.Module:
        """The model on images ([0, 1] float NCHW): frozen part then trained part."""
        return nn.Sequential(copy.deepcopy(self.parts[0]), model)

    def _model_path(self, key: str) -> Path:
        return self.cache / "models" / f"{key}.pt"

    def _training(
        self,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        seed: int,
        forget: ForgetSplit | None = None,
        relabel: dict[int, float] | None = None,
    ) -> tuple[dict, Path]:
        """A training's identity (everything its result depends on) and the cache path it is stored at."""
        identity = {
            "kind": "age-model",
            "manifest": self.prepared.manifest.hash,
            "architecture": self.architecture,
            "forget": None if forget is None else forget.key,
            "fit": replace(self.fit_config, device=self.device, progress=self.progress).to_dict(),
            "seed": seed,
            "data": stable_hash([np.sort(train_ids).tolist(), np.sort(val_ids).tolist()]),
        }
        if relabel:
            identity["relabel"] = stable_hash(sorted((int(k), float(v)) for k, v in relabel.items()))
        return identity, self._model_path(stable_hash(identity))

    def fit_ensemble(
        self,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        seed: int,
        role: str = "original",
        relabel: dict[int, float] | None = None,
        log_path: Path | None = None,
    ) -> tuple[Ensemble, list[dict]]:
        """Train an ensemble on ``train_ids``, early-stopped on ``val_ids``, and its members' reports;
        writes nothing but the optional log (workers of an executor call this, the driver stores)."""
        fit_config = replace(self.fit_config, device=self.device, progress=self.progress)
        targets = None
        if relabel:
            targets = np.array(
                [relabel.get(int(i), age) for i, age in zip(train_ids, self.ages(train_ids))], dtype=np.float32
            )
        train, val = self.dataset(train_ids, targets), self.dataset(val_ids)
        members, reports = [], []
        for m in range(self.model_config.ensemble):
            member = self.new_member(member_seed(seed, m))
            config = replace(fit_config, seed=member_seed(seed, m))
            result = fit(member, train, val, config, log_path=log_path, description=f"{role} seed {seed} member {m}")
            members.append(member.cpu())
            reports.append(
                {
                    "best_epoch": result.best_epoch,
                    "best_val_mae": result.best_val_mae,
                    "seconds": round(result.seconds, 2),
                    "epochs": len(result.history),
                }
            )
        return Ensemble(members), reports

    def _store(self, path: Path, identity: dict, model: nn.Module, reports: list[dict], job: dict) -> TrainedModel:
        forget = job.get("forget")
        meta = {
            **identity,
            "role": job.get("role", "original"),
            "forget_spec": None if forget is None else forget.spec,
            "members": reports,
            "seconds": round(sum(r["seconds"] for r in reports), 2),
            "train_size": len(job["train_ids"]),
            "val_size": len(job["val_ids"]),
        }
        save_checkpoint(path, model.state_dict(), meta)
        return TrainedModel(model.eval(), meta, path, from_cache=False)

    def train(
        self,
        train_ids: np.ndarray,
        val_ids: np.ndarray,
        seed: int,
        forget: ForgetSplit | None = None,
        role: str = "original",
        relabel: dict[int, float] | None = None,
    ) -> TrainedModel:
        """Train (or load) an ensemble on ``train_ids``, early-stopped on ``val_ids``.

        ``relabel`` replaces the training label of some ids (the interclass-confusion test)."""
        identity, path = self._training(train_ids, val_ids, seed, forget, relabel)
        if path.exists():
            return self.load(path, identity)
        model, reports = self.fit_ensemble(train_ids, val_ids, seed, role, relabel, path.with_suffix(".log.jsonl"))
        job = dict(train_ids=train_ids, val_ids=val_ids, forget=forget, role=role)
        return self._store(path, identity, model, reports, job)

    def train_many(self, jobs: list[dict], executor=None) -> list[TrainedModel]:
        """``train(**job)`` for each job; those not in the cache are trained through ``executor`` (None:
        here, one after another) and stored here, by the driver, as they come back."""
        self.ensure_trained(jobs, executor)
        return [self.train(**job) for job in jobs]

    def ensure_trained(self, jobs: list[dict], executor=None) -> None:
        """Train, through ``executor``, the jobs not in the cache, and store them; load nothing. Handing an
        executor every training a computation will need in one batch keeps its workers busy to the end,
        where set after set would leave them idle at the tail of each."""
        missing = []
        for job in jobs:
            identity, path = self._training(
                job["train_ids"], job["val_ids"], job["seed"], job.get("forget"), job.get("relabel")
            )
            if not path.exists() and all(path != other for _, other, _ in missing):
                missing.append((identity, path, job))
        if executor is None or len(missing) < 2:
            for _, _, job in missing:
                self.train(**job)
            return
        fitted = executor.imap(
            _fit_job,
            [{k: v for k, v in job.items() if k != "forget"} for _, _, job in missing],
            shared=self.for_workers(),
            description="training",
        )
        for index, (state, reports) in fitted:  # stored as each comes back: a killed run keeps what is done
            identity, path, job = missing[index]
            model = self.new_model(seed=0)
            model.load_state_dict(state)
            self._store(path, identity, model, reports, job)

    def materialise(self) -> None:
        """Build what workers must not build themselves (the backbone, the cached inputs): they would
        write the cache."""
        _ = self.parts, self.inputs

    def for_workers(self) -> "Workspace":
        """A copy to send to executor workers: everything they need is materialised, no progress bars, and
        no decoded faces: workers train and predict on the cached inputs, and the faces (297 MB for UTKFace)
        would otherwise be shipped to, and unpickled by, every worker."""
        self.materialise()
        other = copy.copy(self)
        other.progress = False
        other.prepared = replace(self.prepared, faces=self.prepared.faces.without_images())
        return other

    def __getstate__(self) -> dict:
        # The cached inputs travel as a NumPy array: Ray's object store shares NumPy arrays between the
        # tasks of a node without a copy, where a tensor is copied into every task (for the head scope's
        # UTKFace embeddings, 8,443 rows x 2 views x 1,280 float32 = 86 MB per task).
        state = dict(self.__dict__)
        if isinstance(state.get("inputs"), torch.Tensor):
            state["inputs"] = state["inputs"].cpu().numpy()
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("inputs"), np.ndarray):
            with warnings.catch_warnings():  # read-only when shared by Ray: the inputs are only indexed (copied)
                warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                state["inputs"] = torch.from_numpy(state["inputs"])
        self.__dict__.update(state)

    def load(self, path: str | os.PathLike, expect: dict | None = None) -> TrainedModel:
        """Load a model checkpoint made by this workspace's recipe; any other manifest or architecture fails."""
        expect = {"manifest": self.prepared.manifest.hash, "architecture": self.architecture, **(expect or {})}
        state, meta = load_checkpoint(path, expect=expect)
        model = self.new_model(seed=0)
        model.load_state_dict(state)
        return TrainedModel(model.eval(), meta, Path(path), from_cache=True)

    def original_job(self, seed: int = 0) -> dict:
        """M_O's training (``train`` arguments): the train split (originals + augmented copies), early-stopped
        on val."""
        return dict(train_ids=self.split_ids("train"), val_ids=self.split_ids("val"), seed=seed, role="original")

    def retrained_job(self, forget: ForgetSplit, seed: int = 0) -> dict:
        """M_R's training: from the same starting point on retain-train only, early-stopped on retain-val."""
        return dict(
            train_ids=forget.retain_train, val_ids=forget.retain_val, seed=seed, forget=forget, role="retrained"
        )

    def original(self, seed: int = 0) -> TrainedModel:
        return self.train(**self.original_job(seed))

    def retrained(self, forget: ForgetSplit, seed: int = 0) -> TrainedModel:
        return self.train(**self.retrained_job(forget, seed))

    # -- unlearning ------------------------------------------------------------------------------
    @property
    def label_range(self) -> tuple[float, float]:
        """The protocol's age range (the thesis's [20, 60])."""
        protocol = self.prepared.manifest.meta["protocol"]
        return float(protocol["age_min"]), float(protocol["age_max"])

    def unlearn(
        self,
        method: str,
        model: nn.Module,
        split: ForgetSplit,
        knob_value=None,
        seed: int = 0,
        forget_targets: np.ndarray | None = None,
        **config_values,
    ) -> Unlearned:
        """``unlearn`` on a forget split of this dataset: retain-train, forget (with ``forget_targets`` if
        given) and retain-val, the method's config for this recipe (``config_for``), fresh models from
        this recipe's starting point and the protocol's label range."""
        config = config_for(method, self.fit_config, knob_value, seed, self.device, **config_values)
        return unlearn(
            method,
            model,
            self.dataset(split.retain_train),
            self.dataset(split.forget, forget_targets),
            self.dataset(split.retain_val),
            config,
            new_model=self.new_member,
            label_range=self.label_range,
        )

    # -- evaluation --------------------------------------------------------------------------------
    def predict(self, model: nn.Module, ids: np.ndarray) -> np.ndarray:
        return predict(model, self.dataset(ids), device=self.device)

    def evaluate(self, model: nn.Module) -> dict:
        """Test MAE overall and per forget age group."""
        test = self.split_ids("test")
        errors = absolute_errors(self.ages(test), self.predict(model, test))
        groups = self.prepared.manifest.table.set_index("id").loc[test, "forget_group"].to_numpy()
        per_group = {
            f"{low}-{high}": float(errors[groups == j].mean()) if (groups == j).any() else None
            for j, (low, high) in enumerate(FORGET_GROUPS)
        }
        return {"test_mae": float(errors.mean()), "test_mae_by_group": per_group, "test_size": len(test)}


def _fit_job(workspace: Workspace, job: dict) -> tuple[dict, list[dict]]:
    """An executor job: one ensemble's weights and reports (``Workspace.train_many``)."""
    model, reports = workspace.fit_ensemble(
        job["train_ids"], job["val_ids"], job["seed"], job.get("role", "original"), job.get("relabel")
    )
    return model.state_dict(), reports
