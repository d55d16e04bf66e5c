"""Ctrl-C for real: SIGINT to the command's whole process group (as a terminal sends it) while it
works.  The command exits 130 with one line, its worker processes are gone, and what it had
finished is kept.  Every wait polls under a generous bound (the machine may be busy)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

BOUND_S = 900  # generous: these wait for real work on a shared 2-core machine


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    """``featgeom ARGS`` in a new session (its own process group), stderr captured, with SIGINT's
    default disposition as under a terminal (a shell that started the tests in the background
    passes SIGINT down ignored, and Python then never raises KeyboardInterrupt)."""
    return subprocess.Popen([sys.executable, "-m", "featgeom.cli", *map(str, args)], cwd=cwd, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_terminal_sigint)


def _terminal_sigint() -> None:
    """In the child, before exec: SIGINT back to its default (exec keeps an ignored signal ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {BOUND_S} s")
        time.sleep(0.2)


def interrupt(proc: subprocess.Popen) -> tuple[int, str]:
    """Send SIGINT to the process group, as Ctrl-C does; exit code and stderr."""
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=BOUND_S)
    return proc.returncode, err


def stored_jobs(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=60) as con:
            return con.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.parametrize("backend", [[], ["--ray"]], ids=["processes", "ray"])
def test_ctrl_c_stops_a_run_and_its_workers(tmp_path, backend):
    if backend:
        pytest.importorskip("ray")
    out = tmp_path / "run"
    proc = start(["run", "quickstart", "--preset", "tiny", "--workers", "2", *backend, "--quiet", "--out", out], tmp_path)
    wait_for(lambda: stored_jobs(out / "results.sqlite") >= 1, proc, "a stored job")
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "the run has worker processes"
    done = stored_jobs(out / "results.sqlite")
    code, err = interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted; rerun the same command to resume")
    gone, alive = psutil.wait_procs(workers, timeout=BOUND_S)
    assert not alive, f"workers still running: {alive}"
    assert stored_jobs(out / "results.sqlite") >= done  # finished work is kept


def test_ctrl_c_stops_training_with_130(tmp_path, tiny_world):
    from featgeom.family import FamilyConfig, build_family, save

    config = {"name": "ctrl-c", "world": tiny_world.config.to_dict()}
    save(build_family(FamilyConfig.from_dict(config), world=tiny_world), tmp_path / "family")
    proc = start(["sae", "train", "--family", tmp_path / "family", "--arch", "topk", "--samples", "50000000",
                  "--no-progress", "--out", tmp_path / "store"], tmp_path)
    wait_for(lambda: "sae" in proc_status(proc), proc, "training in progress")
    code, err = interrupt(proc)
    assert code == 130, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted; rerun the same command to resume")
    assert not list((tmp_path / "store").glob("sae-*/manifest.json"))  # nothing stored as finished


def proc_status(proc: subprocess.Popen) -> str:
    """'sae' once the process has imported the trainer and spent a few CPU seconds in it."""
    try:
        cpu = psutil.Process(proc.pid).cpu_times()
    except psutil.NoSuchProcess:
        return ""
    return "sae" if cpu.user > 8 else ""
