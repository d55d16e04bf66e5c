"""The two kinds of job an experiment runs, as picklable dataclasses with plain functions.

Jobs run in worker processes (local or Ray), so they carry paths, not objects: each loads the
family from the store (hash-verified) and returns plain data the driver stores. A job's ``device``
('cpu', 'cuda' or 'cuda:N'; :mod:`featgeom.device`) says where its torch work runs.

* :class:`TrainJob` -> ``{"path", "metrics"}`` of the SAE trained (or found) in the store, and
  ``"snapshots"`` (fraction -> path, :func:`checkpoint_key`) of the snapshots it was asked to
  keep (``checkpoints``: the ``sae.checkpoint`` values of the grid points that need it); its name
  is content-addressed (family, member, SAE settings, seed; not the checkpoints, which are
  views of the same run; a run has one device), so every grid point that needs the same SAE
  shares one job;
* :class:`AnalysisJob` -> result rows (dicts with the columns of
  :data:`featgeom.store.results.RESULT_COLUMNS`) of one registered analysis of one or two SAEs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from featgeom.store import canonical_json


@dataclass(frozen=True)
class TrainJob:
    """Train an SAE of architecture ``arch`` on ``member`` with ``seed`` (recipe defaults + overrides;
    ``revival`` None: the recipe's), keeping its snapshots at the fractions ``checkpoints`` of the
    training (:func:`featgeom.sae.train.train`)."""

    family_dir: str
    store: str
    member: str
    seed: int
    arch: str
    samples: int
    width_factor: float | None
    l0: int | None
    replicate: int = 0
    device: str = "cpu"
    revival: str | None = None
    checkpoints: tuple[float, ...] = ()

    @property
    def name(self) -> str:
        """'train:<member>:<arch>:s<seed>[:r<replicate>]@<hash of family and settings>' (``revival``
        in the hash only when set, so the names of runs without it are those before it existed)."""
        settings = {"family": Path(self.family_dir).name, "member": self.member, "seed": self.seed,
                    "arch": self.arch, "samples": self.samples, "width_factor": self.width_factor, "l0": self.l0}
        key = canonical_json(settings if self.revival is None else {**settings, "revival": self.revival})
        digest = hashlib.sha256(key.encode()).hexdigest()[:10]
        return f"train:{self.member}:{self.arch}:s{self.seed}" + (f":r{self.replicate}" if self.replicate else "") \
            + f"@{digest}"


@dataclass(frozen=True)
class AnalysisJob:
    """Run analysis ``analysis`` (function ``run``, see :mod:`featgeom.experiments.analyses`) on
    the SAE(s) at ``sae_a`` / ``sae_b`` ('' for a one-SAE analysis) of ``member_a`` / ``member_b``,
    at the grid point ``condition_json`` (label ``condition``), in ``replicate``; ``checkpoint_a`` /
    ``checkpoint_b``: the fraction of its training each SAE is taken at (1: the final SAE)."""

    analysis: str
    run: Any
    pair: bool
    family_dir: str
    sae_a: str
    sae_b: str
    member_a: str
    member_b: str
    seed_a: int
    seed_b: int
    condition: str
    condition_json: str
    samples: int
    sample_seed: int
    n_perm: int
    modes: tuple[str, ...]
    nulls: tuple[str, ...] = ("repair",)
    metrics: tuple[str, ...] | None = None
    replicate: int = 0
    device: str = "cpu"
    checkpoint_a: float = 1.0
    checkpoint_b: float = 1.0

    @property
    def name(self) -> str:
        """'<analysis>:<condition>:<member_a>:s<seed_a>-<member_b>:s<seed_b>[:r<replicate>]'."""
        members = f"{self.member_a}:s{self.seed_a}" + (f"-{self.member_b}:s{self.seed_b}" if self.pair else "")
        return f"{self.analysis}:{self.condition_json}:{members}" + (f":r{self.replicate}" if self.replicate else "")


def run_job(job: TrainJob | AnalysisJob) -> Any:
    """Run one job in this process on one thread (torch and BLAS), so that its numbers do not
    depend on where it runs (serial, worker process or Ray task)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return train_sae(job) if isinstance(job, TrainJob) else analyse(job)


def train_sae(job: TrainJob) -> dict[str, Any]:
    """Train (or load from the store) the SAE of ``job`` with the snapshots it asks for; its path
    and metrics, and (with checkpoints) ``snapshots``: checkpoint_key(fraction) -> path."""
    from featgeom.family import load
    from featgeom.sae import train
    from featgeom.sae.checkpoint import snapshot_path
    from featgeom.sae.train import family_id_of

    family = load(job.family_dir)
    cfg = train_config(job, family)
    trained = train(family, job.member, cfg, store=job.store, snapshots=job.checkpoints)
    out: dict[str, Any] = {"path": str(trained.path), "metrics": trained.metrics}
    if job.checkpoints:
        fid, member = family_id_of(family), family.member(job.member).name
        out["snapshots"] = {checkpoint_key(c): str(snapshot_path(job.store, cfg, fid, member, c))
                            for c in job.checkpoints}
    return out


def checkpoint_key(fraction: float) -> str:
    """The JSON key of a checkpoint fraction ('0.25')."""
    return repr(float(fraction))


def sae_path(trained: dict[str, Any], fraction: float) -> str:
    """The path of a finished train job's SAE at ``fraction`` of its training (1: the final SAE)."""
    return trained["path"] if fraction == 1 else trained["snapshots"][checkpoint_key(fraction)]


def train_config(job: TrainJob, family: Any) -> Any:
    """The SAETrainConfig of ``job`` on ``family``: the recipe of its architecture with the job's
    samples, seed, device and (when set) width factor and L0; ConfigError naming the field on bad
    values."""
    from featgeom.sae.recipes import recipe

    overrides: dict[str, Any] = {"samples": job.samples, "seed": job.seed, "device": job.device}
    if job.width_factor is not None:
        overrides["width"] = max(1, round(job.width_factor * family.member(job.member).num_features))
    if job.l0 is not None:
        overrides["l0"] = job.l0
    if job.revival is not None:
        overrides["revival"] = job.revival
    return recipe(job.arch, family, job.member, **overrides)


def analyse(job: AnalysisJob) -> list[dict[str, Any]]:
    """Run the job's analysis; one results row per value it returns."""
    from featgeom.compare import value_rows
    from featgeom.experiments.analyses import AnalysisInput, values_of
    from featgeom.family import load
    from featgeom.sae import load as load_sae

    family = load(job.family_dir)
    sae_a = load_sae(job.sae_a)
    sae_b = load_sae(job.sae_b) if job.sae_b else None
    inp = AnalysisInput(family, job.member_a, job.member_b, sae_a, sae_b, job.seed_a, job.seed_b, job.samples,
                        job.sample_seed, job.n_perm, job.modes, job.nulls, job.metrics, job.device,
                        json.loads(job.condition_json))
    context = {"analysis": job.analysis, "condition": job.condition, "condition_json": job.condition_json,
               "member_a": job.member_a, "member_b": job.member_b, "seed_a": job.seed_a, "seed_b": job.seed_b,
               "replicate": job.replicate}
    return value_rows(context, values_of(job.run(inp)))


def job_detail(job: TrainJob | AnalysisJob) -> dict[str, Any]:
    """The job's fields (JSON-ready) for the jobs table (an analysis's function by its qualified name)."""
    detail = {k: v for k, v in asdict(job).items() if k != "run"}
    if isinstance(job, AnalysisJob):
        detail["run"] = f"{getattr(job.run, '__module__', '?')}.{getattr(job.run, '__qualname__', '?')}"
    return {k: list(v) if isinstance(v, tuple) else v for k, v in detail.items()}
