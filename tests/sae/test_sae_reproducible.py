"""An SAE's id determines its bits: the CLI (torch's default threads) and the experiment runner
(one thread) give byte-identical weights for the same id."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from featgeom.experiments.jobs import TrainJob, run_job

SAMPLES = 262_144  # beyond the 200k dead window: the aux loss then sees the thread count


def test_cli_with_two_threads_equals_runner_with_one(run_cli, family_dir, tmp_path):
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        code, out, err = run_cli("sae", "train", "--family", family_dir, "--member", "rot", "--arch", "topk",
                                 "--samples", str(SAMPLES), "--no-progress",
                                 "--out", tmp_path / "cli")
        assert code == 0, err
        assert torch.get_num_threads() == 2  # the caller's setting is restored
        cli = json.loads(out.strip().splitlines()[-1])
        job = run_job(TrainJob(str(family_dir), str(tmp_path / "job"), "rot", 0, "topk", SAMPLES, None, None))
    finally:
        torch.set_num_threads(previous)
    assert Path(job["path"]).name == Path(cli["path"]).name  # same id
    assert (Path(job["path"]) / "sae_weights.safetensors").read_bytes() == \
        (Path(cli["path"]) / "sae_weights.safetensors").read_bytes()
    assert {k: job["metrics"][k] for k in ("mcc", "f1", "explained_variance", "l0")} == \
        {k: cli[k] for k in ("mcc", "f1", "explained_variance", "l0")}  # both on the default 100k held-out samples
