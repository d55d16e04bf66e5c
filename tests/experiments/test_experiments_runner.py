"""Running experiments: stored rows, caching, determinism across backends, kill-and-resume, Ray."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featgeom.experiments.runner import run_experiment
from featgeom.store.results import ResultsDB

from .helpers import spec_yaml, stored_values, tiny_spec

from featgeom.compare import SIMILARITY_METRICS

MODES = 2  # many_to_one, mutual
# per mode: n_pairs, mean_corr, every similarity, accuracy; GT; rho/shared
ROWS_PER_COMPARE = MODES * (2 + len(SIMILARITY_METRICS) + 1) + 12 + 3


def test_every_compare_job_stores_every_value_once(tiny_run):
    spec = tiny_spec()
    rows = ResultsDB(tiny_run.db).results()
    (axis,) = spec.axes
    assert tiny_run.jobs_total == tiny_run.jobs_run == (1 + len(axis.values)) + len(axis.values)
    assert len(rows) == len(axis.values) * ROWS_PER_COMPARE
    keys = {(r["condition"], r["seed_a"], r["pairing"], r["metric"], r["null_kind"]) for r in rows}
    assert len(keys) == len(rows)
    assert {json.loads(r["condition_json"])[axis.axis] for r in rows} == set(axis.values)
    assert {r["analysis"] for r in rows} == {"cross_member"}
    tested = [r for r in rows if r["p_value"] is not None]
    assert tested and all(1 / (spec.compare.n_perm + 1) <= r["p_value"] <= 1 for r in tested)
    assert {r["null_kind"] for r in tested} == {"repair"}
    assert all(r["featgeom_version"] and r["sae_lens_version"] and r["config_hash"] == spec.config_hash for r in rows)


def test_csv_export_matches_the_database(tiny_run):
    lines = (tiny_run.out / "results.csv").read_text().strip().splitlines()
    assert lines[0].startswith("experiment,config_hash,analysis,condition,condition_json")
    assert len(lines) - 1 == len(ResultsDB(tiny_run.db).results())


def test_quickstart_findings_make_sense(tiny_run):
    """Identical members score ~1; pairing accuracy falls as the shared fraction falls."""
    rows = ResultsDB(tiny_run.db).results()

    def value(overlap: float, pairing: str, metric: str) -> float:
        (r,) = [r for r in rows if json.loads(r["condition_json"])["variant.feature_overlap_ratio"] == overlap
                and r["pairing"] == pairing and r["metric"] == metric]
        return r["value"]

    assert value(1.0, "mutual", "svcca") > 0.99 and value(1.0, "", "gt_mcc") == pytest.approx(1.0)
    acc = [value(v, "mutual", "correspondence_accuracy") for v in (1.0, 0.85, 0.7)]
    assert acc[0] > acc[1] > acc[2]
    assert value(0.7, "", "shared_fraction") == pytest.approx(0.7, abs=0.01)


def test_rerun_reuses_everything(tiny_run):
    before = stored_values(tiny_run.out)
    again = run_experiment(tiny_spec(), tiny_run.out, workers=1, progress=False)
    assert again.jobs_run == 0 and stored_values(tiny_run.out) == before


def test_worker_processes_give_the_same_numbers(tiny_run, tmp_path):
    run_experiment(tiny_spec(), tmp_path, workers=2, progress=False)
    assert stored_values(tmp_path) == stored_values(tiny_run.out)


def test_killed_run_resumes_without_lost_or_duplicated_rows(tiny_run, tmp_path):
    """SIGKILL the CLI after two stored jobs (one in flight), run again: same rows as uninterrupted."""
    config = spec_yaml(tiny_spec(), tmp_path / "exp.yaml")
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "featgeom.cli", "run", str(config), "--preset", "tiny", "--out", str(out),
           "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        stored = _wait_for_jobs(out / "results.sqlite", 2, proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert 2 <= stored < tiny_run.jobs_total, "the kill must land mid-run"
    assert not list(out.glob("store/sae-*/.*tmp*"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert stored_values(out) == stored_values(tiny_run.out)
    assert f"{tiny_run.jobs_total - stored} of {tiny_run.jobs_total} jobs run now" in done.stdout


def _wait_for_jobs(db: Path, n: int, proc: subprocess.Popen, timeout: float = 300) -> int:
    """Poll the jobs table until it holds ``n`` jobs; return how many it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if db.exists():
            try:
                count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
            if count >= n:
                return count
        time.sleep(0.05)
    raise AssertionError(f"run ended or timed out before {n} jobs were stored (exit {proc.poll()})")


def test_ray_backend_gives_the_same_numbers(tiny_run, tmp_path):
    """A local Ray instance started by the run (2 CPUs) runs the same jobs to the same numbers."""
    summary = run_experiment(tiny_spec(), tmp_path, workers=2, ray=True, progress=False)
    assert summary.jobs_run == tiny_run.jobs_total
    assert stored_values(tmp_path) == stored_values(tiny_run.out)


@pytest.mark.parametrize(("change", "field"), [({"samples": 10}, "sae.samples"), ({"l0": 100_000}, "sae.l0")])
def test_a_bad_sae_setting_fails_before_anything_is_written(tmp_path, change, field):
    from dataclasses import replace

    from featgeom.errors import ConfigError

    spec = tiny_spec()
    spec = replace(spec, sae=replace(spec.sae, **change))
    with pytest.raises(ConfigError, match=f"^{field}"):
        run_experiment(spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
