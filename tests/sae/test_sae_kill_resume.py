"""`featgeom sae train` (checkpoints by default, every 10% of the samples) killed with SIGKILL, then
rerun, ends bit-identical to an uninterrupted run without checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from featgeom.sae import load
from featgeom.sae.checkpoint import checkpoint_samples

SAMPLES = 393_216


def _command(family_dir: Path, out: Path, *extra: str) -> list[str]:
    code = "import sys; from featgeom.cli import main; sys.argv[0] = 'featgeom'; sys.exit(main())"
    return [sys.executable, "-c", code, "sae", "train", "--family", str(family_dir), "--member", "base",
            "--arch", "topk", "--l0", "4", "--width", "64", "--samples", str(SAMPLES), "--batch-size", "512",
            "--lr", "0.003", "--seed", "3", "--eval-samples", "4096", "--out", str(out), "--no-progress", *extra]


def _run(family_dir: Path, out: Path, *extra: str) -> dict:
    done = subprocess.run(_command(family_dir, out, *extra), capture_output=True, text=True, timeout=900,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _first_checkpoint(out: Path) -> Path | None:
    root = out / "checkpoints"
    if not root.is_dir():
        return None
    for run_dir in root.iterdir():
        if checkpoint_samples(run_dir):
            return run_dir
    return None


def test_sigkill_after_first_checkpoint_then_rerun_equals_uninterrupted(family_dir, tmp_path):
    whole = _run(family_dir, tmp_path / "whole", "--checkpoint-every", "0")
    assert not (tmp_path / "whole" / "checkpoints").exists()

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_command(family_dir, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while _first_checkpoint(killed) is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed; raise SAMPLES"
    run_dir = _first_checkpoint(killed)
    assert run_dir is not None
    assert not list(killed.glob("sae-*")), "killed run must not have left a final artifact"
    before = checkpoint_samples(run_dir)
    assert before and before[-1] < SAMPLES and before[0] == 39_424  # the first step past 10% of the samples

    resumed = _run(family_dir, killed)
    assert resumed["id"] == whole["id"] == run_dir.name
    assert not run_dir.exists()  # checkpoints are removed once the SAE is stored
    a, b = load(whole["path"]), load(resumed["path"])
    sa, sb = a.sae.state_dict(), b.sae.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    for key in ("mcc", "f1", "explained_variance", "l0", "dead_fraction"):
        assert resumed[key] == whole[key], key
    assert (Path(whole["path"]) / "sae_weights.safetensors").read_bytes() == \
        (Path(resumed["path"]) / "sae_weights.safetensors").read_bytes()
