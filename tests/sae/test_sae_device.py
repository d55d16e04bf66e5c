"""SAE training on a device: the setting is checked before any work, the device type is in the id
(CPU ids unchanged), out-of-memory is one error that keeps the last checkpoint, and the full-scale
preset of `featgeom sae train` has the published settings."""

from __future__ import annotations

import importlib
import json

import pytest
import torch

from featgeom.errors import ConfigError, ResourceError
from featgeom.sae import SAETrainConfig, train
from featgeom.sae.artifact import run_config, run_id
from featgeom.sae.checkpoint import checkpoint_samples
from featgeom.sae.recipes import published_settings, recipe

train_module = importlib.import_module("featgeom.sae.train")  # featgeom.sae.train is also the function
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without CUDA")


def test_device_is_canonical_and_checked_for_syntax_only(quick):
    assert quick("topk").device == "cpu"
    assert quick("topk", device="CUDA:0").device == "cuda:0"  # readable on a CPU machine (stored GPU runs)
    with pytest.raises(ConfigError, match="^device: expected 'cpu', 'cuda' or 'cuda:N', got 'gpu'"):
        quick("topk", device="gpu")


def test_cpu_ids_are_those_of_the_trainer_before_devices(quick):
    """'cpu' adds nothing to the hashed config, so every stored CPU SAE keeps its id."""
    assert "device" not in run_config(quick("topk"), "f", "base")["train"]
    assert run_id(quick("topk", device="cpu"), "f", "base") == run_id(quick("topk"), "f", "base")


def test_the_device_type_is_in_the_id_the_index_is_not(quick):
    cuda = run_id(quick("topk", device="cuda"), "f", "base")
    assert cuda != run_id(quick("topk"), "f", "base")
    assert run_id(quick("topk", device="cuda:1"), "f", "base") == cuda
    assert run_config(quick("topk", device="cuda:1"), "f", "base")["train"]["device"] == "cuda"


@no_cuda
def test_cuda_on_a_machine_without_it_fails_before_anything_is_written(family, quick, tmp_path):
    with pytest.raises(ConfigError, match="^device: 'cuda' asked for, but this machine has no CUDA device"):
        train(family, "base", quick("topk", device="cuda"), tmp_path / "store", eval_samples=1024)
    assert not (tmp_path / "store").exists()


def test_out_of_memory_is_one_error_and_keeps_the_last_checkpoint(family, quick, tmp_path, monkeypatch):
    original = train_module._step

    def step(run):
        if run.samples >= 4096:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        original(run)

    monkeypatch.setattr(train_module, "_step", step)
    with pytest.raises(ResourceError, match=r"^training topk \(width 64\) on cpu: out of device memory \(needs "
                                            r"about \d+\.\d+ [KMG]iB\); CUDA out of memory\. Tried to allocate 2\.00 "
                                            r"GiB; .*; last good checkpoint kept at .*000000004096 \(a rerun "
                                            r"with the same settings resumes from it\)$"):
        train(family, "base", quick("topk", checkpoint_every=2048), tmp_path, eval_samples=1024)
    assert not list(tmp_path.glob("sae-*"))
    assert checkpoint_samples(next((tmp_path / "checkpoints").iterdir()))[-1] == 4096
    monkeypatch.setattr(train_module, "_step", original)
    resumed = train(family, "base", quick("topk", checkpoint_every=2048), tmp_path, eval_samples=1024)
    fresh = train(family, "base", quick("topk"), eval_samples=1024)
    for name, value in resumed.sae.state_dict().items():
        assert torch.equal(value, fresh.sae.state_dict()[name]), name


def test_a_trained_sae_is_stored_as_a_cpu_sae(family, quick, tmp_path):
    trained = train(family, "base", quick("topk"), tmp_path, eval_samples=1024)
    assert json.loads((trained.path / "cfg.json").read_text())["device"] == "cpu"
    assert trained.sae.W_dec.device.type == "cpu"


def test_published_settings_of_the_16k_world(family):
    assert published_settings("synthsaebench-16k") == {"width": 4096, "l0": 25, "samples": 200_000_000}
    assert published_settings("tiny") == {} and published_settings(None) == {}
    cfg = recipe("batchtopk", family, "base", **published_settings("synthsaebench-16k"), device="cuda")
    assert (cfg.width, cfg.l0, cfg.samples, cfg.device) == (4096, 25, 200_000_000, "cuda")


@no_cuda
def test_cli_device_errors_exit_2_before_any_work(run_cli, family_dir, tmp_path):
    out = tmp_path / "out"
    code, _, err = run_cli("sae", "train", "--family", family_dir, "--arch", "topk", "--device", "cuda",
                           "--out", out)
    assert code == 2 and err.strip().startswith("error: --device: 'cuda' asked for") and len(err.strip().splitlines()) == 1
    assert not out.exists()
    code, _, err = run_cli("sae", "train", "--family", family_dir, "--arch", "topk", "--device", "tpu", "--out", out)
    assert code == 2 and "--device: expected 'cpu', 'cuda' or 'cuda:N', got 'tpu'" in err


def test_cli_family_or_preset_exactly_one(run_cli, family_dir, tmp_path):
    for args in (("--family", str(family_dir), "--preset", "tiny"), ()):
        code, _, err = run_cli("sae", "train", *args, "--arch", "topk", "--out", tmp_path / "out")
        assert code == 2 and "--family, --preset: give exactly one" in err, err


def test_cli_preset_builds_the_family_once_in_the_store(run_cli, tmp_path):
    out = tmp_path / "store"
    args = ("sae", "train", "--preset", "tiny", "--arch", "topk", "--samples", "16384", "--width", "64",
            "--l0", "4", "--eval-samples", "1024", "--no-progress", "--out", out)
    code, stdout, err = run_cli(*args)
    assert code == 0, err
    first = json.loads(stdout.strip().splitlines()[-1])
    families = list(out.glob("family-*"))
    assert len(families) == 1
    code, stdout, err = run_cli(*args)  # the stored family and SAE are found again
    assert code == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["path"] == first["path"]
    assert list(out.glob("family-*")) == families
    code, stdout, err = run_cli("sae", "eval", first["path"], "--family", families[0], "--eval-samples", "1024",
                                "--device", "cpu")
    assert code == 0, err


@no_cuda
def test_cli_eval_device_error(run_cli, family_dir, tmp_path):
    code, _, err = run_cli("sae", "eval", tmp_path / "missing", "--family", family_dir, "--device", "cuda:1")
    assert code == 2 and "--device: 'cuda:1' asked for" in err


def test_training_config_round_trips_with_the_device():
    cfg = SAETrainConfig(arch="topk", width=8, l0=2, device="cuda:0")
    assert SAETrainConfig.from_dict(cfg.to_dict()) == cfg
