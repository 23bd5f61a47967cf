"""``olvido run`` as a library call: the whole study for one or more scopes, ending in a report.

The top floor of the library (above ``experiments`` and ``report``): the CLI and the benchmarks call it.
Presets live here, not in the CLI:

- ``thesis`` (default): 3 seeds, ensembles of 3 in the head scope (single networks in the others), K = 32
  models per side and 16 LiRA shadows for the head-scope verdicts (single-model verdicts elsewhere), and in
  the last scope the memorising regime's verdicts with U-LiRA (8 shadow originals);
- ``quick``: the whole pipeline in under 3 minutes on synthetic faces: 1 seed, forget groups 0, 2 and 4,
  single networks without test-time mirroring, one pretraining epoch, each method at the smallest value
  of its knob, single-model verdicts.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from olvido.data import PreparedData
from olvido.errors import OlvidoError
from olvido.executor import get_executor
from olvido.experiments.study import StudyConfig, StudyResult, run_study
from olvido.experiments.verdicts import VerdictConfig
from olvido.experiments.workspace import ModelConfig, Workspace
from olvido.methods import get_method, list_methods
from olvido.models.pretrain import DEFAULT_PRETRAIN, PretrainConfig
from olvido.report.study_report import write_report

PRESETS = ("thesis", "quick")


@dataclass(frozen=True)
class RunConfig:
    scopes: tuple[str, ...] = ("head",)
    study: StudyConfig = StudyConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = DEFAULT_PRETRAIN
    # Ensemble size per scope; the last scope trains a backbone stage per member, so it defaults to one
    # member per seed to keep the full study within an hour on a 2-core CPU.
    ensemble_by_scope: tuple[tuple[str, int], ...] = (("last", 1), ("all", 1))
    # Verdicts per scope (None: none). K models per side and LiRA shadows cost 4K + shadows trainings:
    # cheap on embeddings, about half a minute each in the last scope (with Ray here), where the NeurIPS
    # score (K = 16) goes only to the methods that have no head scope and so no score there.
    verdicts: VerdictConfig | None = VerdictConfig()
    verdicts_by_scope: tuple[tuple[str, VerdictConfig], ...] = (
        (
            "last",
            VerdictConfig(
                k=16, shadows=0, k_methods=tuple(m for m in list_methods() if "head" not in get_method(m).scopes)
            ),
        ),
        ("all", VerdictConfig(k=0, shadows=0)),
    )
    # The memorising regime's verdicts per scope (models trained with ``MEMORISING_FIT``, where attacks mean
    # something): U-LiRA with 8 shadow originals, each unlearned by every method, besides the single-model
    # verdicts; no NeurIPS score (K sets of memorising models are hours here).
    memorising_by_scope: tuple[tuple[str, VerdictConfig], ...] = (
        ("last", VerdictConfig(k=0, shadows=0, ulira_shadows=8)),
    )
    preset: str = "thesis"
    # folders `olvido tune` wrote (the last wins where several tune a scope and method): tuned methods are
    # reported at their tuned configurations
    tuned_dirs: tuple[str, ...] = ()
    executor: str = "local"  # where many-model work runs: local or ray (olvido.executor)
    ray_address: str | None = None  # an existing Ray cluster to join (executor ray)

    def with_memorising_shadows(self, shadows: int) -> "RunConfig":
        """The memorising regime with ``shadows`` U-LiRA shadow originals (in the ``last`` scope where the
        preset has no regime); 0 skips it."""
        regime = self.memorising_by_scope or (("last", VerdictConfig(k=0, shadows=0)),)
        return replace(
            self,
            memorising_by_scope=tuple(
                (scope, replace(verdict, ulira_shadows=shadows)) for scope, verdict in regime if shadows
            ),
        )

    @classmethod
    def from_preset(cls, name: str = "thesis", scopes: tuple[str, ...] = ("head",)) -> "RunConfig":
        if name not in PRESETS:
            raise OlvidoError(f"preset {name!r}: expected one of {', '.join(PRESETS)}")
        if name == "thesis":
            return cls(scopes=scopes)
        # quick: the smallest value of every method's knob (every registered method), one seed, single networks
        sweeps = tuple(
            (m, tuple(sorted(get_method(m).knob.values)[:1])) for m in list_methods() if get_method(m).knob.values
        )
        return cls(
            scopes=scopes,
            study=StudyConfig(seeds=(0,), sweeps=sweeps, groups=(0, 2, 4)),
            model=ModelConfig(ensemble=1, mirror=False),
            pretrain=replace(DEFAULT_PRETRAIN, epochs=1, warmup_epochs=0.0),
            ensemble_by_scope=(),
            verdicts=VerdictConfig(k=0, shadows=0),
            verdicts_by_scope=(),
            memorising_by_scope=(),
            preset=name,
        )


def machine_description() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, Python {platform.python_version()}, torch {torch.__version__}"


def workspace_for(
    prepared: PreparedData, config: RunConfig, scope: str, cache=None, progress=True, device="auto"
) -> Workspace:
    ensemble = dict(config.ensemble_by_scope).get(scope, config.model.ensemble)
    model = replace(config.model, scope=scope, ensemble=ensemble)
    pretrain = replace(config.pretrain, backbone=model.backbone)
    return Workspace(prepared, model, pretrain_config=pretrain, cache=cache, progress=progress, device=device)


@dataclass
class RunResult:
    index: Path
    results: list[StudyResult] = field(default_factory=list)
    minutes: float = 0.0


def run_all(
    prepared: PreparedData,
    config: RunConfig,
    out: str | os.PathLike,
    data_label: str,
    cache=None,
    progress: bool = True,
    device: str = "auto",
) -> RunResult:
    """Every scope's study, then the report (``index.md`` in ``out``)."""
    started = time.perf_counter()
    results = []
    tuned, setups = {}, {}
    if config.tuned_dirs:
        from olvido.experiments.tuning import load_tuned, load_tuned_setups  # Optuna only where tuning is used

        tuned = load_tuned(config.tuned_dirs)
        setups = {scope: load_tuned_setups(config.tuned_dirs, scope) for scope in tuned}
    with get_executor(config.executor, config.ray_address, progress=progress) as executor:
        for scope in config.scopes:
            workspace = workspace_for(prepared, config, scope, cache, progress, device)
            verdicts = dict(config.verdicts_by_scope).get(scope, config.verdicts)
            memorising = dict(config.memorising_by_scope).get(scope)
            results.append(
                run_study(
                    workspace,
                    config.study,
                    progress,
                    verdicts,
                    executor,
                    memorising,
                    tuned=tuned.get(scope),
                    tuned_setups=setups.get(scope),
                )
            )
    minutes = round((time.perf_counter() - started) / 60, 2)
    meta = {
        "command": "olvido " + " ".join(sys.argv[1:])
        if sys.argv and sys.argv[0].endswith("olvido")
        else "run_all(...)",
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "data": data_label,
        "manifest": prepared.manifest.hash,
        "machine": machine_description(),
        "preset": config.preset,
        "minutes": minutes,
    }
    return RunResult(write_report(results, out, meta), results, minutes)
