import json

import numpy as np
import pytest
import torch

from featgeom.errors import ArtifactError, ConfigError, DataError
from featgeom.sae import ARCHITECTURES, load, train
from featgeom.sae.artifact import run_id
from featgeom.sae.checkpoint import checkpoint_root, checkpoint_samples

METRICS = ("mcc", "f1", "explained_variance", "l0", "dead_fraction", "shrinkage", "uniqueness")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_trains_and_learns(family, quick, arch, tmp_path):
    trained = train(family, "rot", quick(arch), tmp_path, eval_samples=4096)
    assert all(np.isfinite(trained.metrics[k]) for k in METRICS)
    assert trained.metrics["explained_variance"] > 0.0
    mse = trained.history["mse"]
    assert mse[-1] < mse[0]  # it learned something
    assert trained.history["samples"][-1] == 16_384


def test_artifact_loads_with_saelens_alone_and_matches(family, quick, tmp_path):
    from sae_lens import SAE

    trained = train(family, "base", quick("batchtopk"), tmp_path, eval_samples=1024)
    assert trained.path == tmp_path / f"sae-{trained.id}"
    direct = SAE.load_from_disk(trained.path)
    x = torch.randn(7, 32)
    torch.testing.assert_close(direct.encode(x), trained.sae.encode(x))
    config = json.loads((trained.path / "config.json").read_text())
    assert config["member"] == "base" and config["train"]["arch"] == "batchtopk"
    assert load(trained.path).metrics == trained.metrics


def test_same_config_same_sae_and_numbers(family, quick):
    a = train(family, "narrow", quick("standard", seed=3), eval_samples=2048)
    b = train(family, "narrow", quick("standard", seed=3), eval_samples=2048)
    c = train(family, "narrow", quick("standard", seed=4), eval_samples=2048)
    assert torch.equal(a.sae.W_dec, b.sae.W_dec)
    assert a.metrics == b.metrics and a.id == b.id
    assert not torch.equal(a.sae.W_dec, c.sae.W_dec) and a.id != c.id


def test_existing_artifact_is_returned_without_training(family, quick, tmp_path):
    first = train(family, "base", quick("topk"), tmp_path, eval_samples=1024)
    calls = []
    again = train(family, "base", quick("topk"), tmp_path, eval_samples=1024, on_step=calls.append)
    assert calls == [] and again.id == first.id


def test_corrupted_saelens_weights_are_detected(family, quick, tmp_path):
    trained = train(family, "base", quick("topk"), tmp_path, eval_samples=1024)
    weights = trained.path / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8])
    with pytest.raises(ArtifactError, match="sae_weights.safetensors is corrupted"):
        load(trained.path)


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "gated"])
def test_l0_controller_lands_within_ten_percent(family, quick, arch):
    cfg = quick(arch, samples=200_000, l0=6, batch_size=1024, log_every=50_000, lr=3e-3, dead_window=50_000,
                resample_every=50_000)
    trained = train(family, "base", cfg, eval_samples=8192)
    assert trained.metrics["l0"] == pytest.approx(6, rel=0.10)


class _Killed(Exception):
    pass


def test_resume_after_kill_ends_like_an_uninterrupted_run(family, quick, tmp_path):
    cfg = quick("jumprelu", checkpoint_every=4096, seed=2)
    whole = train(family, "rot", cfg, tmp_path / "a", eval_samples=2048)

    def kill_at(samples):
        if samples >= 10_240:
            raise _Killed

    with pytest.raises(_Killed):
        train(family, "rot", cfg, tmp_path / "b", eval_samples=2048, on_step=kill_at)
    root = checkpoint_root(tmp_path / "b", whole.id)
    assert checkpoint_samples(root) == [4096, 8192]
    assert not list((tmp_path / "b").glob("sae-*"))  # nothing half-written
    seen = []
    resumed = train(family, "rot", cfg, tmp_path / "b", eval_samples=2048, on_step=seen.append)
    assert seen[0] == 8192 + 512  # continued after the last checkpoint
    assert resumed.id == whole.id and resumed.metrics == whole.metrics
    for name, value in whole.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    np.testing.assert_array_equal(resumed.history["mse"], whole.history["mse"])


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(family, quick, tmp_path):
    cfg = quick("standard", checkpoint_every=2048)
    poison = {"on": False}

    from featgeom.sae.data import MemberStream
    original = MemberStream.next_hidden

    def next_hidden(self, n):
        x = original(self, n)
        return x * float("nan") if poison["on"] else x

    def arm(samples):
        poison["on"] = samples >= 4096

    MemberStream.next_hidden = next_hidden
    try:
        with pytest.raises(DataError, match=r"^training diverged: loss became nan at step 8 \(after 4096 samples\).*000000004096"):
            train(family, "base", cfg, tmp_path, eval_samples=1024, on_step=arm)
    finally:
        MemberStream.next_hidden = original
    assert not list(tmp_path.glob("sae-*"))
    assert checkpoint_samples(next((tmp_path / "checkpoints").iterdir()))[-1] == 4096


def test_a_diverged_run_is_an_error_and_stores_nothing(family, quick, tmp_path):
    """lr 10 drives a standard SAE far from the data: explained variance < 0; the run must fail,
    keep its checkpoints (a rerun fails the same way, from the last one) and store no artifact."""
    cfg = quick("standard", lr=10.0)
    with pytest.raises(DataError, match=r"^training diverged: explained variance -\S+ < 0 on 2048 held-out "
                                        r"samples .*nothing stored, checkpoints kept in .*try a lower lr \(was 10\)"):
        train(family, "base", cfg, tmp_path, eval_samples=2048)
    assert not list(tmp_path.glob("sae-*"))
    root = next((tmp_path / "checkpoints").iterdir())
    assert checkpoint_samples(root)[-1] == cfg.samples
    calls = []
    with pytest.raises(DataError, match="^training diverged: explained variance"):
        train(family, "base", cfg, tmp_path, eval_samples=2048, on_step=calls.append)
    assert calls == []  # resumed from the final checkpoint, failed again without training


def test_all_latents_dead_is_a_diverged_run(family, quick):
    """Thresholds far above every pre-activation: nothing fires, so no gradient reaches them (the
    step's straight-through window is empty) and every latent stays dead on any CPU (an lr-10 run
    died on one machine class and blew up on another)."""
    cfg = quick("jumprelu", jumprelu_init_threshold=1e6, calibrate_l0=False, revival="none")
    with pytest.raises(DataError, match=r"^training diverged: all 64 latents are dead on 2048 held-out samples; "
                                        r"nothing stored, no checkpoint"):
        train(family, "base", cfg, eval_samples=2048)


def test_non_finite_weights_are_a_diverged_run(family, quick, monkeypatch):
    import importlib

    train_module = importlib.import_module("featgeom.sae.train")

    original = train_module._inference_sae

    def poisoned(training_sae):
        sae = original(training_sae)
        with torch.no_grad():
            sae.W_dec[0, 0] = float("inf")
        return sae

    monkeypatch.setattr(train_module, "_inference_sae", poisoned)
    with pytest.raises(DataError, match=r"^training diverged: non-finite values in W_dec after 16384 samples"):
        train(family, "base", quick("topk"), eval_samples=2048)


def test_checkpoints_by_default_every_tenth_removed_once_stored(family, quick, tmp_path):
    cfg = quick("batchtopk", seed=6)
    assert cfg.checkpoint_every is None and cfg.checkpoint_interval == 1638

    def kill_at(samples):
        if samples >= 8192:
            raise _Killed

    with pytest.raises(_Killed):
        train(family, "base", cfg, tmp_path, eval_samples=2048, on_step=kill_at)
    root = next((tmp_path / "checkpoints").iterdir())
    assert checkpoint_samples(root) == [2048, 3584, 5120, 6656, 8192]  # first step past each 1,638 samples
    resumed = train(family, "base", cfg, tmp_path, eval_samples=2048)
    assert not root.exists()
    assert resumed.id == root.name


def test_checkpoints_and_threads_in_and_out_of_the_id(family, quick, tmp_path):
    """checkpoint_every changes no bit (so not the id); threads may (so it is in the id)."""
    never = train(family, "base", quick("topk", checkpoint_every=0, seed=7), tmp_path / "never", eval_samples=2048)
    often = train(family, "base", quick("topk", checkpoint_every=512, seed=7), tmp_path / "often", eval_samples=2048)
    default = train(family, "base", quick("topk", seed=7), eval_samples=2048)
    assert never.id == often.id == default.id
    weights = (never.path / "sae_weights.safetensors").read_bytes()
    assert (often.path / "sae_weights.safetensors").read_bytes() == weights
    for name, value in never.sae.state_dict().items():
        assert torch.equal(value, default.sae.state_dict()[name]), name
    assert run_id(quick("topk", threads=2), "f", "base") != run_id(quick("topk"), "f", "base")


def test_the_trainer_version_and_torch_are_in_the_id(quick, monkeypatch):
    from importlib.metadata import version

    from featgeom.sae import artifact

    assert f"/sae-{artifact.TRAINER_VERSION}/" in artifact.GENERATOR
    assert f"/torch-{version('torch')}/" in artifact.GENERATOR
    current = run_id(quick("topk"), "f", "base")
    monkeypatch.setattr(artifact, "GENERATOR", artifact.GENERATOR.replace(f"/sae-{artifact.TRAINER_VERSION}/", "/sae-1/"))
    assert run_id(quick("topk"), "f", "base") != current  # an older trainer's SAE is not returned


def test_training_restores_the_callers_thread_count(family, quick):
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        seen = []
        train(family, "base", quick("topk", samples=2048), eval_samples=512,
              on_step=lambda _: seen.append(torch.get_num_threads()))
        assert seen == [1] * 4 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


def test_eval_samples_are_checked_before_training(family, quick):
    calls = []
    with pytest.raises(ConfigError, match=r"^eval_samples: must be an integer >= 512 .* got 0$"):
        train(family, "base", quick("topk"), eval_samples=0, on_step=calls.append)
    assert calls == []
