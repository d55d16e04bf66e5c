"""The two kinds of job an experiment runs, as picklable dataclasses with plain functions.

Jobs run in worker processes (local or Ray), so they carry paths, not objects: each loads the
family from the store (hash-verified) and returns plain data the driver stores. A job's ``device``
('cpu', 'cuda' or 'cuda:N'; :mod:`featgeom.device`) says where its torch work runs: the SAE's
training, or the comparison (``'cpu'``: the NumPy path).

* :class:`TrainJob` -> ``{"path", "metrics"}`` of the SAE trained (or found) in the store;
* :class:`CompareJob` -> result rows (dicts with the columns of
  :data:`featgeom.store.results.RESULT_COLUMNS`) of ``compare`` with ground truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

@dataclass(frozen=True)
class TrainJob:
    """Train the experiment's SAE on ``member`` with ``seed`` (recipe defaults + overrides)."""

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

    @property
    def name(self) -> str:
        return train_name(self.member, self.seed, self.replicate)


def train_name(member: str, seed: int, replicate: int) -> str:
    """Name of the train job of (member, seed) in ``replicate`` ('train:base:s0', 'train:base:s0:r3')."""
    return f"train:{member}:s{seed}" + (f":r{replicate}" if replicate else "")


@dataclass(frozen=True)
class CompareJob:
    """Compare SAE (member_a, seed_a) with SAE (member_b, seed_b) on shared inputs, with ground truth."""

    family_dir: str
    sae_a: str
    sae_b: str
    member_a: str
    member_b: str
    seed_a: int
    seed_b: int
    condition: str
    swept_variable: str
    swept_value: float
    samples: int
    sample_seed: int
    n_perm: int
    modes: tuple[str, ...]
    nulls: tuple[str, ...] = ("repair",)
    replicate: int = 0
    device: str = "cpu"

    @property
    def name(self) -> str:
        return f"compare:{self.condition}:s{self.seed_a}-s{self.seed_b}" + (f":r{self.replicate}" if self.replicate else "")


def run_job(job: TrainJob | CompareJob) -> Any:
    """Run one job in this process on one thread (torch and BLAS), so that its numbers do not
    depend on where it runs (serial, worker process or Ray task)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    with threadpool_limits(1):
        return train_sae(job) if isinstance(job, TrainJob) else compare_saes(job)


def train_sae(job: TrainJob) -> dict[str, Any]:
    """Train (or load from the store) the SAE of ``job``; its path and metrics."""
    from featgeom.family import load
    from featgeom.sae import train

    family = load(job.family_dir)
    trained = train(family, job.member, train_config(job, family), store=job.store)
    return {"path": str(trained.path), "metrics": trained.metrics}


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
    return recipe(job.arch, family, job.member, **overrides)


def compare_saes(job: CompareJob) -> list[dict[str, Any]]:
    """``compare`` the two SAEs of ``job`` with ground truth (on the job's device); one row per
    measured value."""
    from featgeom.device import compute_device
    from featgeom.compare import GroundTruth, compare, result_values, value_rows
    from featgeom.family import load
    from featgeom.sae import load as load_sae

    family = load(job.family_dir)
    batch = family.sample(job.samples, seed=job.sample_seed, with_features=True, members=[job.member_a, job.member_b])
    sae_a, sae_b = load_sae(job.sae_a), load_sae(job.sae_b)
    result = compare(sae_a.sae, sae_b.sae, batch.hidden[job.member_a], batch.hidden[job.member_b],
                     modes=job.modes, n_perm=job.n_perm, seed=job.seed_a, nulls=job.nulls,
                     device=compute_device(job.device, "device"),
                     ground_truth=GroundTruth.from_family(family, job.member_a, job.member_b, batch.features))
    values = result_values(result.to_dict())
    shared = family.shared_with_base(job.member_b) / family.member(job.member_b).num_features
    values += [("", "rho_mm_a", family.member(job.member_a).rho_mm, None, None, None, "", ""),
               ("", "rho_mm_b", family.member(job.member_b).rho_mm, None, None, None, "", ""),
               ("", "shared_fraction", shared, None, None, None, "", "")]
    context = {"condition": job.condition, "swept_variable": job.swept_variable, "swept_value": job.swept_value,
               "member_a": job.member_a, "member_b": job.member_b, "seed_a": job.seed_a, "seed_b": job.seed_b,
               "replicate": job.replicate}
    return value_rows(context, values)


def job_detail(job: TrainJob | CompareJob) -> dict[str, Any]:
    """The job's fields (JSON-ready) for the jobs table."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(job).items()}
