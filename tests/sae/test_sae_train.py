import json

import numpy as np
import pytest
import torch

from featgeom.errors import ArtifactError, DataError
from featgeom.sae import ARCHITECTURES, load, train
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
        with pytest.raises(DataError, match=r"loss became nan at step 8 \(after 4096 samples\).*000000004096"):
            train(family, "base", cfg, tmp_path, eval_samples=1024, on_step=arm)
    finally:
        MemberStream.next_hidden = original
    assert not list(tmp_path.glob("sae-*"))
    assert checkpoint_samples(next((tmp_path / "checkpoints").iterdir()))[-1] == 4096
