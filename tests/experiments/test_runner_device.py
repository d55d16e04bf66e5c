"""The run's device: checked before anything is written, part of the config hash when not 'cpu',
carried by every job into the SAE config, and a GPU asked of Ray for each CUDA task."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from featgeom.errors import ConfigError
from featgeom.experiments.jobs import AnalysisJob, TrainJob, train_config
from featgeom.experiments.runner import family_dirs, plan, run_experiment, run_spec, task_resources
from featgeom.store.results import ResultsDB

from .helpers import tiny_spec

CUDA = torch.cuda.is_available()


@pytest.mark.skipif(CUDA, reason="checks a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_on_a_machine_without_it_fails_before_anything_is_written(tmp_path, device):
    with pytest.raises(ConfigError, match="^device: .*no CUDA device"):
        run_experiment(tiny_spec(), tmp_path / "out", device=device, progress=False)
    assert not (tmp_path / "out").exists()


def test_a_bad_device_string_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="^device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        run_experiment(tiny_spec(), tmp_path / "out", device="gpu", progress=False)
    assert not (tmp_path / "out").exists()


def test_a_cpu_run_keeps_its_config_hash_and_a_cuda_run_gets_another():
    spec = tiny_spec()
    assert "device" not in spec.to_dict()
    assert run_spec(spec, None) is spec and run_spec(spec, "cpu") is spec
    on_cuda = run_spec(spec, "cuda", ray=True, cluster=True)  # a cluster's GPUs are checked when the run joins it
    assert on_cuda.device == "cuda" and on_cuda.to_dict()["device"] == "cuda"
    assert on_cuda.config_hash != spec.config_hash
    assert replace(spec, device="cuda").config_hash == on_cuda.config_hash


def test_ray_takes_cuda_without_an_index():
    with pytest.raises(ConfigError, match="^device: 'cuda:1' with Ray"):
        run_spec(tiny_spec(), "cuda:1", ray=True, cluster=True)


def test_every_job_runs_on_the_run_device(tmp_path):
    spec = run_spec(tiny_spec(), "cuda", ray=True, cluster=True)
    dirs = {key: path for key, (path, _) in family_dirs(spec, tmp_path).items()}
    trains, analyses = plan(spec, dirs, tmp_path)
    assert {job.device for job in trains} == {job.device for job, _ in analyses} == {"cuda"}
    assert [job.name for job in trains] == [job.name for job in plan(tiny_spec(), dirs, tmp_path)[0]]


def test_a_cuda_train_job_gives_a_cuda_sae_config_with_another_id(tiny_run):
    from featgeom.family import load
    from featgeom.sae.artifact import run_id
    from featgeom.sae.train import family_id_of

    spec = tiny_spec()
    ((path, _),) = family_dirs(spec, tiny_run.out / "store").values()
    family = load(path)  # the stored family: building one takes long
    job = TrainJob("", "", "base", 0, spec.sae.arch, spec.sae.samples, spec.sae.width_factor, spec.sae.l0)
    cpu, cuda = train_config(job, family), train_config(replace(job, device="cuda"), family)
    assert (cpu.device, cuda.device) == ("cpu", "cuda")
    assert replace(cuda, device="cpu") == cpu
    fid = family_id_of(family)
    assert run_id(cuda, fid, "base") != run_id(cpu, fid, "base")
    assert replace(job, device="cuda").name == job.name


def _jobs(device: str) -> list[TrainJob | AnalysisJob]:
    from featgeom.experiments.analyses import compare_pair

    train = TrainJob("fam", "store", "base", 0, "topk", 1000, None, None, device=device)
    compare = AnalysisJob("cross_member", compare_pair, True, "fam", "a", "b", "base", "v", 0, 0, "x", "{}", 100, 0, 9,
                          ("mutual",), device=device)
    return [train, compare]


@pytest.mark.parametrize(("device", "resources"), [("cpu", {"num_cpus": 1}),
                                                   ("cuda", {"num_cpus": 1, "num_gpus": 1})])
def test_a_ray_task_asks_for_a_gpu_exactly_when_its_job_runs_on_cuda(device, resources):
    import ray

    from featgeom.experiments.runner import _timed_job

    for job in _jobs(device):
        assert task_resources(job) == resources
        ray.remote(_timed_job).options(**task_resources(job))  # options Ray accepts (no cluster needed)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_a_cuda_run_stores_every_value_of_the_cpu_run(tiny_run, tmp_path):
    """The tiny quickstart on CUDA: another run (hash), the same jobs and result keys as on the CPU."""
    summary = run_experiment(tiny_spec(), tmp_path, device="cuda", progress=False)
    assert summary.config_hash != tiny_run.config_hash and summary.jobs_run == tiny_run.jobs_total

    def keys(db):
        return sorted((r["condition"], r["pairing"], r["metric"], r["null_kind"]) for r in ResultsDB(db).results())

    assert keys(summary.db) == keys(tiny_run.db)
