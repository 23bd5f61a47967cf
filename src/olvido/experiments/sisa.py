"""SISA (Bourtoule et al., S&P 2021): exact unlearning by design.

The train split is cut into S shards and each shard into R slices; shard s trains on its slices
cumulatively (slice r on slices 0..r) and stores a checkpoint after every slice, keyed by the hash of
every id it has trained on so far. The SISA model aggregates the S shard models' predictions (mean or
median, clipped to the label range). Deleting images changes the key of every slice at or after the first
that held one of them in their shards, and nothing else: training the SISA model on the remaining ids
loads every unchanged prefix from the cache and retrains only the rest, from the last valid checkpoint.

Placement is a function of an image alone (its row in the manifest under a seeded permutation; an
augmented copy goes with its source), never of the set being trained, so a SISA model after deletions is
the very model trained from scratch on the remaining data. The epoch schedule is the original code's:
slice r trains ``int((r+1)a) - int(ra)`` epochs with ``a = 2R/(R+1) * e/R``, so a shard gets the same
sample-passes as ``e`` epochs over it. Expected cost of deleting one image, uniform over slices:
``(2R+1)/(3RS)`` of a full retrain (``expected_deletion_fraction``).

    sisa = Sisa(workspace, SisaConfig(shards=4, slices=4))
    full = sisa.fit(workspace.split_ids("train"))            # trains S x R slices (cached)
    after = sisa.forget(parse_forget(prepared.manifest, "ids:12,40"))   # retrains the changed suffixes
    workspace.predict(after.model, ids)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from olvido.checkpoint import load_checkpoint, save_checkpoint
from olvido.data.forget import ForgetSplit
from olvido.data.protocol import NOT_AUGMENTED
from olvido.errors import OlvidoError
from olvido.executor import LocalExecutor
from olvido.experiments.workspace import Workspace
from olvido.models.ensemble import member_seed
from olvido.storage import stable_hash
from olvido.training import fit

AGGREGATIONS = ("mean", "median")


@dataclass(frozen=True)
class SisaConfig:
    """``epochs``: e, the sample-passes over each shard in total (the original code's default, 20);
    ``aggregation``: how the shard models' predictions are combined (``mean`` or ``median``)."""

    shards: int = 4
    slices: int = 4
    epochs: int = 20
    aggregation: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("shards", "slices", "epochs"):
            if getattr(self, name) < 1:
                raise OlvidoError(f"SISA {name} {getattr(self, name)}: expected at least 1")
        if self.aggregation not in AGGREGATIONS:
            raise OlvidoError(f"SISA aggregation {self.aggregation!r}: expected one of {', '.join(AGGREGATIONS)}")

    def slice_epochs(self) -> list[int]:
        """Epochs of each slice: the original schedule, ``e`` sample-passes over the shard in total."""
        a = 2 * self.slices / (self.slices + 1) * self.epochs / self.slices
        return [int((r + 1) * a) - int(r * a) for r in range(self.slices)]

    def expected_deletion_fraction(self) -> float:
        """Expected share of a full SISA retrain that deleting one image costs, uniform over slices."""
        return (2 * self.slices + 1) / (3 * self.slices * self.shards)


class SisaModel(nn.Module):
    """The shard models' predictions combined (mean or median) and clipped to the label range."""

    def __init__(self, shards: list[nn.Module], aggregation: str, label_range: tuple[float, float]):
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.aggregation = aggregation
        self.low, self.high = label_range

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([shard(inputs) for shard in self.shards])
        combined = outputs.mean(dim=0) if self.aggregation == "mean" else outputs.median(dim=0).values
        return combined.clamp(self.low, self.high)


@dataclass
class SisaResult:
    model: SisaModel
    trained_slices: int  # slices trained by this call (the rest came from the cache)
    total_slices: int
    sample_passes: int  # images x epochs trained by this call
    full_sample_passes: int  # images x epochs of training every slice
    seconds: float  # training time of the slices trained by this call
    shard_sizes: list[int] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Share of a full SISA training's sample-passes that this call trained."""
        return self.sample_passes / self.full_sample_passes if self.full_sample_passes else 0.0


class Sisa:
    def __init__(
        self, workspace: Workspace, config: SisaConfig = SisaConfig(), executor=None, store: Path | None = None
    ):
        """``executor``: where shards train (``olvido.executor``; default: here, one after another);
        ``store``: the folder of slice checkpoints (default: the workspace cache's ``sisa``; another folder
        trains a SISA model from scratch, e.g. the exact reference of a deletion)."""
        self.ws = workspace.with_ensemble(1)
        self.config = config
        self.store = Path(store) if store is not None else Path(self.ws.cache) / "sisa"
        self.executor = executor if executor is not None else LocalExecutor(progress=False)
        table = self.ws.prepared.manifest.table
        owners = np.where(table["source_id"] == NOT_AUGMENTED, table["id"], table["source_id"]).astype(np.int64)
        rank = np.empty(len(table), dtype=np.int64)
        rank[np.random.default_rng([config.seed, 29]).permutation(len(table))] = np.arange(len(table))
        owner_rank = rank[self.ws.rows(owners)]  # a copy sits where its source sits
        self._shard = owner_rank % config.shards
        self._slice = (owner_rank // config.shards) % config.slices

    def placement(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each id's (shard, slice)."""
        rows = self.ws.rows(ids)
        return self._shard[rows], self._slice[rows]

    def plan(self, train_ids: np.ndarray) -> list[list[np.ndarray]]:
        """Per shard, per slice, the sorted ids the slice trains on (its own and the earlier slices')."""
        train_ids = np.unique(np.asarray(train_ids, dtype=np.int64))
        shard, slice_ = self.placement(train_ids)
        return [
            [train_ids[(shard == s) & (slice_ <= r)] for r in range(self.config.slices)]
            for s in range(self.config.shards)
        ]

    def _slice_path(self, shard: int, slice_: int, ids: np.ndarray) -> tuple[dict, Path]:
        identity = {
            "kind": "sisa-slice",
            "manifest": self.ws.prepared.manifest.hash,
            "architecture": self.ws.architecture,
            "fit": self._fit_config(shard, slice_).to_dict(),
            "sisa": {k: v for k, v in vars(self.config).items() if k != "aggregation"},
            "shard": shard,
            "slice": slice_,
            "data": stable_hash(ids.tolist()),
        }
        return identity, self.store / f"{stable_hash(identity)}.pt"

    def _fit_config(self, shard: int, slice_: int):
        epochs = self.config.slice_epochs()[slice_]
        return replace(
            self.ws.fit_config,
            epochs=epochs,
            patience=None,
            warmup_epochs=min(self.ws.fit_config.warmup_epochs, epochs),
            seed=100 * member_seed(self.config.seed, shard) + slice_,
            device=self.ws.device,
            progress=False,
        )

    def fit(self, train_ids: np.ndarray) -> SisaResult:
        """The SISA model of ``train_ids``: every slice whose checkpoint is missing is trained, from its
        shard's last valid checkpoint, shards through the executor; stored here as each shard returns."""
        plan = self.plan(train_ids)
        epochs = self.config.slice_epochs()
        paths = [[self._slice_path(s, r, ids) for r, ids in enumerate(slices)] for s, slices in enumerate(plan)]
        jobs = []
        for s, slices in enumerate(plan):
            valid = next((r for r in range(self.config.slices) if not paths[s][r][1].exists()), None)
            if valid is None:
                continue
            start = None if valid == 0 else load_checkpoint(paths[s][valid - 1][1])[0]
            work = [(r, slices[r], self._fit_config(s, r)) for r in range(valid, self.config.slices)]
            jobs.append((s, start, work, member_seed(self.config.seed, s)))
        seconds = 0.0
        trained = passes = 0
        if jobs:
            shared = self.ws.for_workers()
            for index, states in self.executor.imap(_shard_job, jobs, shared=shared, description="shards"):
                s, _, work, _ = jobs[index]
                for (r, ids, _), (state, slice_seconds) in zip(work, states):
                    identity, path = paths[s][r]
                    save_checkpoint(path, state, {**identity, "seconds": slice_seconds, "size": len(ids)})
                    seconds += slice_seconds
                    trained += 1
                    passes += len(ids) * epochs[r]
        full = sum(len(ids) * epochs[r] for slices in plan for r, ids in enumerate(slices))
        shards = []
        for s in range(self.config.shards):
            member = self.ws.new_member(seed=0)
            member.load_state_dict(load_checkpoint(paths[s][-1][1])[0])
            shards.append(member.eval())
        model = SisaModel(shards, self.config.aggregation, self.ws.label_range)
        return SisaResult(
            model.eval(),
            trained,
            self.config.shards * self.config.slices,
            passes,
            full,
            round(seconds, 3),
            [len(slices[-1]) for slices in plan],
        )

    def train(self) -> SisaResult:
        """The SISA model of the whole train split (originals and augmented copies)."""
        return self.fit(self.ws.split_ids("train"))

    def forget(self, split: ForgetSplit) -> SisaResult:
        """The SISA model without ``split``'s images and their augmented copies: only the slices that held
        them, and those after them in their shards, are retrained. Every forgotten image must be one the
        SISA model trained on (a train-split original)."""
        train = set(self.ws.split_ids("train").tolist())
        outside = [int(i) for i in split.forget if int(i) not in train]
        if outside:
            raise OlvidoError(
                f"SISA forget {split.spec!r}: ids {outside[:10]} are not train images; expected ids of train-split "
                "originals (the SISA model never trained on validation or test images)"
            )
        return self.fit(split.retain_train)


def _shard_job(workspace: Workspace, job) -> list[tuple[dict, float]]:
    """An executor job: train one shard's slices in order from its start (None: a fresh model from the
    shard's seed); each slice's weights and seconds."""
    _, start, work, init_seed = job
    model = workspace.new_member(seed=init_seed)
    if start is not None:
        model.load_state_dict(start)
    done = []
    for _, ids, config in work:
        began = time.perf_counter()
        if config.epochs:
            fit(model, workspace.dataset(ids), None, config)
        done.append(({k: v.detach().clone() for k, v in model.state_dict().items()}, time.perf_counter() - began))
    return done
