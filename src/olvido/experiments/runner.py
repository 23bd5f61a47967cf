"""``olvido run``: the whole study in one call, for one or more trainable scopes, ending in a report."""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from olvido.data import PreparedData
from olvido.experiments.study import StudyConfig, StudyResult, run_study
from olvido.experiments.verdicts import VerdictConfig
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.models.pretrain import PretrainConfig


@dataclass(frozen=True)
class RunConfig:
    scopes: tuple[str, ...] = ("head",)
    study: StudyConfig = StudyConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    # Ensemble size per scope; the last scope trains a backbone stage per member, so it defaults to one
    # member per seed to keep the full study within an hour on a 2-core CPU.
    ensemble_by_scope: tuple[tuple[str, int], ...] = (("last", 1), ("all", 1))
    # Verdicts per scope (None: none). K models per side and LiRA shadows cost K + 2K + shadows trainings:
    # cheap on embeddings, an hour for the last scope, where only the single-model verdicts run.
    verdicts: VerdictConfig | None = VerdictConfig()
    verdicts_by_scope: tuple[tuple[str, VerdictConfig], ...] = (
        ("last", VerdictConfig(k=0, shadows=0)), ("all", VerdictConfig(k=0, shadows=0)),
    )



def machine_description() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores, {gpu}, {platform.system()} {platform.machine()}, torch {torch.__version__}"


def workspace_for(prepared: PreparedData, config: RunConfig, scope: str, cache=None, progress=True, device="auto") -> Workspace:
    ensemble = dict(config.ensemble_by_scope).get(scope, config.model.ensemble)
    model = replace(config.model, scope=scope, ensemble=ensemble)
    pretrain = replace(config.pretrain, backbone=model.backbone)
    return Workspace(prepared, model, pretrain_config=pretrain, cache=cache, progress=progress, device=device)


def run_all(
    prepared: PreparedData,
    config: RunConfig,
    out: str | os.PathLike,
    data_label: str,
    cache=None,
    progress: bool = True,
    device: str = "auto",
) -> tuple[Path, list[StudyResult]]:
    """Every scope's study, then the report; returns the path of ``index.md`` and the results."""
    from olvido.report.study_report import write_report

    started = time.perf_counter()
    results = []
    for scope in config.scopes:
        workspace = workspace_for(prepared, config, scope, cache, progress, device)
        verdicts = dict(config.verdicts_by_scope).get(scope, config.verdicts)
        results.append(run_study(workspace, config.study, progress, verdicts))
    meta = {
        "command": "olvido " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("olvido") else "run_all(...)",
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "data": data_label,
        "manifest": prepared.manifest.hash,
        "machine": machine_description(),
        "minutes": round((time.perf_counter() - started) / 60, 2),
    }
    return write_report(results, out, meta), results
