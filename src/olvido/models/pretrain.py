"""Face pretraining without outside data, standing in for the thesis's VGGFace2-pretrained ResNet50.

The backbone (ImageNet weights by default) is trained end to end for age regression, with a linear head,
on the UTKFace images that the protocol's 30% reduction did NOT select (about 70% of the source, all
ages). That pool is disjoint from every train/val/test/forget sample of the manifest, which
``pretraining_pool`` asserts, so pretraining never sees an image the study later evaluates or forgets.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from olvido.checkpoint import load_checkpoint, save_checkpoint
from olvido.data.augment import OnlineAugment
from olvido.data.faceset import FaceSet
from olvido.data.manifest import Manifest
from olvido.data.protocol import NOT_AUGMENTED, reduce_stratified
from olvido.errors import OlvidoError
from olvido.metrics.thesis import absolute_errors
from olvido.models.backbones import build_backbone, split_for_scope
from olvido.models.heads import AgeRegressor, LinearHead
from olvido.storage import cache_dir, file_sha256, stable_hash
from olvido.training import ArrayDataset, FitConfig, fit, l1_loss, predict


@dataclass(frozen=True)
class PretrainConfig:
    """The face-pretraining recipe. Defaults: the variant chosen in BENCHMARKS.md ("Face-pretraining recipe
    (issue 8)"): AdamW 1e-3 (weight decay 0.01), one warm-up epoch then cosine, batch 64, 20 epochs, online
    mirror/shift/zoom augmentation; M_O's test MAE went from 5.52 (the first recipe: Adam 5e-4, 3 epochs)
    to 4.52 with test-time mirroring.

    ``age_jitter``: training targets get uniform noise within +-``age_jitter`` years, redrawn at every
    visit (label smoothing in age). ``flip``/``max_shift``/``max_zoom``: online augmentation.
    """

    backbone: str = "mobilenet_v2"
    init: str = "imagenet"  # weights the pretraining starts from: "imagenet", "none" or a checkpoint path
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    flip: bool = True
    max_shift: float = 0.05
    max_zoom: float = 0.1
    age_jitter: float = 0.0
    val_fraction: float = 0.1
    seed: int = 0

    def fit_config(self, device: str = "auto", progress: bool = True) -> FitConfig:
        return FitConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            optimizer=self.optimizer,
            schedule=self.schedule,
            warmup_epochs=self.warmup_epochs,
            patience=self.epochs,
            seed=self.seed,
            device=device,
            progress=progress,
        )

    def augmentation(self) -> OnlineAugment | None:
        augment = OnlineAugment(flip=self.flip, max_shift=self.max_shift, max_zoom=self.max_zoom)
        return augment if augment.active else None


# The default recipe, chosen from the measured variants in BENCHMARKS.md ("Face-pretraining recipe").
DEFAULT_PRETRAIN = PretrainConfig()


def jittered_l1(jitter: float):
    """L1 loss against targets moved by uniform noise within +-``jitter`` years (fresh at every call)."""

    def loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        noise = (2 * torch.rand(target.shape, device=target.device) - 1) * jitter
        return l1_loss(prediction, target + noise)

    return loss


def pretraining_pool(faces: FaceSet, manifest: Manifest) -> np.ndarray:
    """Ids of the source images the reduction left out; asserted disjoint from the whole manifest."""
    if manifest.meta.get("source_id") != faces.source_id:
        raise OlvidoError(f"manifest {manifest.hash} was made from another source than {faces.source_id}")
    protocol = manifest.meta["protocol"]
    reduced = reduce_stratified(faces.table(), protocol["reduce_fraction"], protocol["seed"])
    pool = np.setdiff1d(np.arange(len(faces)), reduced["id"].to_numpy())
    table = manifest.table
    used = np.union1d(
        table.loc[table["source_id"] == NOT_AUGMENTED, "id"].to_numpy(),
        table.loc[table["source_id"] != NOT_AUGMENTED, "source_id"].to_numpy(),
    )
    overlap = np.intersect1d(pool, used)
    if len(overlap):  # would mean the protocol and the pool disagree: never train on evaluated images
        raise AssertionError(f"pretraining pool overlaps the manifest at ids {overlap[:5].tolist()}")
    return pool


def pretrain_backbone(
    faces: FaceSet,
    manifest: Manifest,
    config: PretrainConfig = PretrainConfig(),
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    device: str = "auto",
) -> tuple[Path, dict]:
    """Pretrain (or load from the cache) and return ``(checkpoint path, report)``.

    The checkpoint holds the backbone's torchvision state_dict, so ``build_backbone(name, path)`` loads it.
    """
    pool = pretraining_pool(faces, manifest)
    init_id = config.init if config.init == "none" or config.init.startswith("imagenet") else file_sha256(config.init)
    key = stable_hash(
        {
            "source": faces.source_id,
            "size": faces.image_size,
            "pool": stable_hash(pool.tolist()),
            "config": asdict(config),
            "init": init_id,
        }
    )
    path = cache_dir(cache) / "backbones" / f"{config.backbone}-face-{key}.pt"
    if path.exists():
        _, meta = load_checkpoint(path, expect={"kind": "pretrained-backbone", "backbone": config.backbone})
        return path, meta["report"]

    rng = np.random.default_rng([config.seed, 11])
    shuffled = rng.permutation(pool)
    n_val = max(1, round(config.val_fraction * len(pool)))
    val_ids, train_ids = np.sort(shuffled[:n_val]), np.sort(shuffled[n_val:])
    images = torch.from_numpy(faces.images)
    ages = faces.ages.astype(np.float32)
    train = ArrayDataset(images[train_ids], ages[train_ids], train_ids)
    val = ArrayDataset(images[val_ids], ages[val_ids], val_ids)

    torch.manual_seed(config.seed)
    backbone = build_backbone(config.backbone, config.init)
    _, body = split_for_scope(backbone, "all")
    model = AgeRegressor(body, LinearHead(backbone.feature_dim, initial_age=float(ages[train_ids].mean())))
    result = fit(
        model,
        train,
        val,
        config.fit_config(device, progress),
        loss_fn=jittered_l1(config.age_jitter) if config.age_jitter > 0 else l1_loss,
        description=f"pretraining {config.backbone} on {len(train_ids)} faces",
        augment=config.augmentation(),
    )
    predictions = predict(model, val, device=device)
    mirrored = predict(model, ArrayDataset(val.inputs.flip(-2), val.targets, val_ids), device=device)
    errors = absolute_errors(ages[val_ids], predictions)
    errors_mirrored = absolute_errors(ages[val_ids], (predictions + mirrored) / 2)
    in_range = (ages[val_ids] >= 20) & (ages[val_ids] <= 60)
    report = {
        "pool": len(pool),
        "train": len(train_ids),
        "val": len(val_ids),
        "val_mae": float(errors.mean()),
        "val_mae_20_60": float(errors[in_range].mean()) if in_range.any() else None,
        "val_mae_20_60_mirrored": float(errors_mirrored[in_range].mean()) if in_range.any() else None,
        "best_epoch": result.best_epoch,
        "seconds": round(result.seconds, 1),
        "history": result.history,
    }
    meta = {"kind": "pretrained-backbone", "backbone": config.backbone, "config": asdict(config), "report": report}
    save_checkpoint(path, backbone.backbone_state(), meta)
    return path, report
