"""Training snapshots (the `sae.checkpoint` axis), the `sae.revival` axis, the `dead_latents`
analysis and the findings of the training-stability and dead-latents studies.

A snapshot at fraction c is the SAE of the *same* run after round(c x steps) steps: the tests
check its weights bit for bit against the state a run of the same config holds at that step,
that taking snapshots changes no bit of the run, that a stored snapshot is hash-verified, that a
stored SAE without a requested snapshot gets it, and that an interrupted run resumes to the same
bits."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from featgeom.cli import exit_code
from featgeom.errors import ArtifactError
from featgeom.experiments.findings import FINDINGS
from featgeom.experiments.runner import run_experiment
from featgeom.experiments.spec import ExperimentSpec, load_spec
from featgeom.family import FamilyConfig, build_family
from featgeom.sae import SAETrainConfig, load, train
from featgeom.sae import arch as archs
from featgeom.sae.checkpoint import checkpoint_root, latest_checkpoint, snapshot_path, snapshot_step
from featgeom.sae.train import _inference_sae, family_id_of
from featgeom.store.results import ResultsDB

from .helpers import stored_values

EVAL = 4096  # held-out samples per evaluation (the minimum is 512)


@pytest.fixture(autouse=True)
def _quiet():
    """SAELens warns on every import/call; these tests don't care."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def family(tiny_world):
    return build_family(FamilyConfig.from_dict({"world": tiny_world.config.to_dict()}), world=tiny_world)


def config(arch: str = "topk", **changes) -> SAETrainConfig:
    """A few-second run on the tiny world: 32 steps of 512 samples."""
    base = {"arch": arch, "width": 64, "l0": 4, "samples": 16_384, "batch_size": 512, "log_every": 2048,
            "dead_window": 4096, "resample_every": 4096, "lr": 3e-3, "checkpoint_every": 0,
            "revival": "aux" if arch in ("topk", "jumprelu") else "resample"}
    return SAETrainConfig.from_dict({**base, **changes})


def weights(sae) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in sae.state_dict().items()}


def assert_same_weights(a, b) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), [k for k in wa if not torch.equal(wa[k], wb[k])]


def snapshot(store, cfg, family, fraction):
    return load(snapshot_path(store, cfg, family_id_of(family), "base", fraction))


class Stop(Exception):
    """Raised by on_step to stop a run at a chosen sample count (what a kill leaves behind)."""


def stop_at(samples: int):
    def on_step(done: int) -> None:
        if done == samples:
            raise Stop
    return on_step


def test_snapshot_step_is_the_nearest_whole_step_and_rejects_fractions_outside_0_1():
    cfg = config()
    assert [snapshot_step(cfg, c) for c in (0.01, 0.25, 0.5, 1.0)] == [1, 8, 16, 32]
    for bad in (0, -0.5, 1.5):
        with pytest.raises(Exception, match=r"checkpoint: must be a fraction of the training samples in \(0, 1\]"):
            snapshot_step(cfg, bad)


def test_a_snapshot_holds_the_weights_of_the_same_run_stopped_at_that_step(family, tmp_path):
    """TopK at 25% and 50% of 32 steps: the snapshot's weights equal, bit for bit, the inference SAE
    of the state a run of the same config checkpointed at step 8 / 16; the final SAE, metrics and
    history equal those of a run without snapshots."""
    cfg = config()
    with_snaps = train(family, "base", cfg, tmp_path / "a", eval_samples=EVAL, snapshots=(0.25, 0.5))
    plain = train(family, "base", cfg, tmp_path / "plain", eval_samples=EVAL)
    assert_same_weights(with_snaps.sae, plain.sae)
    assert with_snaps.metrics == plain.metrics
    assert all((with_snaps.history[k] == plain.history[k]).all() for k in ("loss", "mse", "l0", "dead_fraction"))

    stopped = cfg.with_changes(checkpoint_every=8 * 512)
    with pytest.raises(Stop):
        train(family, "base", stopped, tmp_path / "b", eval_samples=EVAL, on_step=stop_at(16 * 512))
    root = checkpoint_root(tmp_path / "b", with_snaps.id)
    for fraction, samples in ((0.25, 8 * 512), (0.5, 16 * 512)):
        _, state = latest_checkpoint(root, with_snaps.id, at_most=samples)
        assert state["samples"] == samples
        training = archs.build_training_sae(cfg, family.member("base").hidden_dim)
        training.load_state_dict(state["sae"])
        snap = snapshot(tmp_path / "a", cfg, family, fraction)
        assert_same_weights(snap.sae, _inference_sae(training))
        assert snap.id != with_snaps.id and snap.history["samples"][-1] == samples
        assert 0 <= snap.metrics["dead_fraction"] <= 1 and snap.metrics["num_samples"] == EVAL
    assert snapshot_path(tmp_path / "a", cfg, family_id_of(family), "base", 1.0) == with_snaps.path


def test_a_controlled_snapshot_is_l0_calibrated_and_leaves_the_run_unchanged(family, tmp_path):
    """Standard (L1, controller + calibration): the snapshot's held-out L0 is near the target as the
    final's is, and taking it (calibration draws training inputs, then rewinds) changes no bit of
    the final SAE."""
    cfg = config("standard")
    with_snaps = train(family, "base", cfg, tmp_path / "a", eval_samples=EVAL, snapshots=(0.5,))
    plain = train(family, "base", cfg, tmp_path / "plain", eval_samples=EVAL)
    assert_same_weights(with_snaps.sae, plain.sae)
    snap = snapshot(tmp_path / "a", cfg, family, 0.5)
    assert abs(snap.metrics["l0"] - cfg.l0) < 1.0 and abs(plain.metrics["l0"] - cfg.l0) < 1.0


def test_a_tampered_snapshot_is_refused(family, tmp_path):
    cfg = config()
    train(family, "base", cfg, tmp_path, eval_samples=EVAL, snapshots=(0.5,))
    path = snapshot_path(tmp_path, cfg, family_id_of(family), "base", 0.5)
    weights_file = path / "sae_weights.safetensors"
    data = bytearray(weights_file.read_bytes())
    data[-1] ^= 0xFF
    weights_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sae_weights.safetensors is corrupted"):
        load(path)


def test_a_stored_sae_without_a_requested_snapshot_gets_it_from_a_rerun(family, tmp_path):
    """The final SAE is stored without snapshots; asking for one reruns the run up to it (not the
    final SAE in its place), bit-identical to a run that kept it from the start; no checkpoint is
    left behind and the final SAE is untouched."""
    cfg = config()
    first = train(family, "base", cfg, tmp_path / "late", eval_samples=EVAL)
    final_manifest = (first.path / "manifest.json").read_text()
    again = train(family, "base", cfg, tmp_path / "late", eval_samples=EVAL, snapshots=(0.25,))
    reference = train(family, "base", cfg, tmp_path / "early", eval_samples=EVAL, snapshots=(0.25,))
    late, early = snapshot(tmp_path / "late", cfg, family, 0.25), snapshot(tmp_path / "early", cfg, family, 0.25)
    assert_same_weights(late.sae, early.sae)
    assert late.metrics == early.metrics and late.id == early.id
    assert not torch.equal(late.sae.W_dec, again.sae.W_dec)  # the snapshot is not the final SAE
    assert (again.path / "manifest.json").read_text() == final_manifest and again.id == reference.id
    assert not checkpoint_root(tmp_path / "late", first.id).exists()


def test_an_interrupted_run_with_snapshots_resumes_to_the_same_bits(family, tmp_path):
    """Stopped after the 25% snapshot and a checkpoint at step 20, the rerun resumes from that
    checkpoint and stores the same 75% snapshot and final SAE as an uninterrupted run."""
    cfg = config(checkpoint_every=4 * 512)
    whole = train(family, "base", cfg, tmp_path / "whole", eval_samples=EVAL, snapshots=(0.25, 0.75))
    with pytest.raises(Stop):
        train(family, "base", cfg, tmp_path / "cut", eval_samples=EVAL, snapshots=(0.25, 0.75),
              on_step=stop_at(21 * 512))
    assert snapshot_path(tmp_path / "cut", cfg, family_id_of(family), "base", 0.25).exists()
    assert not snapshot_path(tmp_path / "cut", cfg, family_id_of(family), "base", 0.75).exists()
    seen: list[int] = []
    resumed = train(family, "base", cfg, tmp_path / "cut", eval_samples=EVAL, snapshots=(0.25, 0.75),
                    on_step=seen.append)
    assert seen[0] == 21 * 512  # resumed from the checkpoint at step 20
    assert_same_weights(resumed.sae, whole.sae)
    for fraction in (0.25, 0.75):
        assert_same_weights(snapshot(tmp_path / "cut", cfg, family, fraction).sae,
                            snapshot(tmp_path / "whole", cfg, family, fraction).sae)


# --- the grid: axes, errors, runs ---

def tiny(**changes) -> ExperimentSpec:
    """One topk SAE (seed 0, 60k samples) at checkpoints 0.5 and 1 with recovery and dead_latents."""
    data = {"name": "ckpt", "description": "checkpoint test",
            "axes": [{"axis": "sae.checkpoint", "values": [0.5, 1.0]}],
            "analyses": ["recovery", {"name": "dead_latents", "across": "sae.checkpoint"}],
            "sae": {"seeds": [0], "samples": 60_000}, "preset": "tiny", **changes}
    return ExperimentSpec.from_dict(data)


def write_yaml(data: dict, path):
    import yaml

    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("axes", "expected"), [
    ([{"axis": "sae.checkpoint", "values": [0, 1.0]}],
     "error: x.yaml.axes[0].values[0]: axis sae.checkpoint: fractions of the training samples must lie in (0, 1] "
     "and increase, got 0"),
    ([{"axis": "sae.checkpoint", "values": [0.5, 1.5]}],
     "error: x.yaml.axes[0].values[1]: axis sae.checkpoint: fractions of the training samples must lie in (0, 1] "
     "and increase, got 1.5"),
    ([{"axis": "sae.checkpoint", "values": [1.0, 0.5]}],
     "error: x.yaml.axes[0].values[1]: axis sae.checkpoint: fractions of the training samples must lie in (0, 1] "
     "and increase, got 0.5"),
    ([{"axis": "sae.revival", "values": ["none", "revive"]}],
     "error: x.yaml.axes[0].values[1]: axis sae.revival: 'revive' is not registered (one of none, aux, resample)"),
    ([{"axis": "sae.arch", "values": ["topk", "standard"]}, {"axis": "sae.revival", "values": ["aux"]}],
     "error: sae.revival: 'aux' needs a TopK-family or jumprelu SAE; use 'resample' for standard"),
])
def test_bad_axis_values_are_one_error_line_exit_2_and_nothing_written(axes, expected, tmp_path, capsys):
    data = {"name": "x", "description": "d", "axes": axes, "analyses": ["recovery"], "sae": {"seeds": [0]}}
    path = write_yaml(data, tmp_path / "x.yaml")
    out = tmp_path / "out"
    code = exit_code(["run", str(path), "--preset", "tiny", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [expected]
    assert not out.exists()


def test_one_train_job_per_sae_keeps_every_checkpoint_the_grid_asks_for(tmp_path):
    from featgeom.experiments.runner import plan

    spec = load_spec("training-stability").at_preset("small")
    dirs = {(w.condition_json, 0): tmp_path / "fam" for w in spec.world_points()}
    trains, analyses = plan(spec, dirs, tmp_path / "store")
    assert len(trains) == 4 * 2 and all(t.checkpoints == (0.1, 0.25, 0.5) for t in trains)
    pairs = [job for job, _ in analyses if job.analysis == "sae_pairs"]
    assert len(pairs) == 10 * 2 * 4
    assert all(job.checkpoint_a == job.checkpoint_b == json.loads(job.condition_json)["sae.checkpoint"] for job in pairs)
    dead = load_spec("dead-latents").at_preset("small")
    dirs = {(w.condition_json, 0): tmp_path / "fam" for w in dead.world_points()}
    trains, analyses = plan(dead, dirs, tmp_path / "store")
    steps = [job for job, _ in analyses if job.analysis == "dead_latents"]
    assert len(trains) == 3 * 3 * 2 and len(steps) == 3 * 3 * 2 * 3
    assert {(j.checkpoint_a, j.checkpoint_b) for j in steps} == {(0.25, 0.5), (0.5, 0.75), (0.75, 1.0)}
    assert all(j.seed_a == j.seed_b for j in steps)


def test_a_checkpoint_grid_runs_resumes_and_measures_dead_latents(tmp_path):
    """recovery at each checkpoint reads that snapshot's held-out evaluation; dead_latents' masks on
    the same held-out samples give the recorded dead fractions, DLS / DLRec in [0, 1]; a run
    stopped after its training job resumes to the uninterrupted run's rows."""
    spec = tiny()
    run_experiment(spec, tmp_path / "whole", progress=False)
    rows = ResultsDB(tmp_path / "whole" / "results.sqlite").results()
    recovery = {json.loads(r["condition_json"])["sae.checkpoint"]: r["value"] for r in rows
                if r["analysis"] == "recovery" and r["metric"] == "dead_fraction"}
    assert sorted(recovery) == [0.5, 1.0]
    mcc = {json.loads(r["condition_json"])["sae.checkpoint"]: r["value"] for r in rows
           if r["analysis"] == "recovery" and r["metric"] == "mcc"}
    assert mcc[0.5] != mcc[1.0]
    dead = {r["metric"]: r for r in rows if r["analysis"] == "dead_latents"}
    assert json.loads(dead["dead_fraction_a"]["condition_json"])["sae.checkpoint"] == [0.5, 1.0]
    assert dead["dead_fraction_a"]["value"] == recovery[0.5] and dead["dead_fraction_b"]["value"] == recovery[1.0]
    for metric in ("dead_latent_stability", "dead_latent_recovery"):
        r = dead[metric]
        assert (r["value"] is None and r["note"]) or 0 <= r["value"] <= 1
    assert {"dead_stayed", "dead_revived", "dead_died"} <= set(dead)

    class Killed(Exception):
        pass

    def kill_after_training(job: str) -> None:
        if job.startswith("train:"):
            raise Killed

    with pytest.raises(Killed):
        run_experiment(spec, tmp_path / "cut", progress=False, on_job=kill_after_training)
    assert ResultsDB(tmp_path / "cut" / "results.sqlite").results() == []
    resumed = run_experiment(spec, tmp_path / "cut", progress=False)
    assert resumed.jobs_run == resumed.jobs_total - 1  # the training job was stored before the stop
    assert stored_values(tmp_path / "cut") == stored_values(tmp_path / "whole")


@pytest.mark.slow
def test_sigkill_after_a_snapshot_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """`featgeom run` killed (SIGKILL) once the 25% snapshot is stored, while the run trains on:
    the rerun resumes from the newest checkpoint and stores the rows of an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    from .helpers import spec_yaml

    spec = tiny(sae={"seeds": [0], "samples": 600_000}, analyses=["recovery"],
                axes=[{"axis": "sae.checkpoint", "values": [0.25, 1.0]}])
    run_experiment(spec, tmp_path / "whole", progress=False)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "featgeom.cli", "run", str(spec_yaml(spec, tmp_path / "exp.yaml")), "--preset",
           "tiny", "--out", str(out), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and not list(out.glob("store/sae-*")):
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert len(list(out.glob("store/sae-*"))) == 1, "the kill must land between the snapshot and the final SAE"
    assert list(out.glob("store/checkpoints/*/*"))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert stored_values(out) == stored_values(tmp_path / "whole")


def test_the_revival_axis_trains_one_sae_per_method(tmp_path):
    from featgeom.experiments.runner import plan

    spec = tiny(axes=[{"axis": "sae.revival", "values": ["none", "aux", "resample"]}], analyses=["recovery"])
    trains, _ = plan(spec, {(w.condition_json, 0): tmp_path for w in spec.world_points()}, tmp_path / "store")
    (recipe,), _ = plan(tiny(axes=[], analyses=["recovery"]), {("{}", 0): tmp_path}, tmp_path / "store")
    assert [t.revival for t in trains] == ["none", "aux", "resample"] and recipe.revival is None
    assert len({t.name for t in [*trains, recipe]}) == 4


def test_dead_latents_needs_a_checkpoint_pair():
    from featgeom.errors import ConfigError
    from featgeom.experiments.analyses import AnalysisInput, dead_latent_steps

    inp = AnalysisInput(None, "base", "base", None, None, 0, 1, 0, 0, 19, ("mutual",), ("repair",), None,
                        condition={"sae.checkpoint": 0.5})
    with pytest.raises(ConfigError, match="use it with across: sae.checkpoint"):
        dead_latent_steps(inp)


# --- the findings on hand-made rows ---

def pair_rows(weak: dict[float, float], strong: dict[float, float], floor: float = 0.95) -> list[dict]:
    """sae_pairs rows of two architectures at each checkpoint: cross-architecture SVCCA ``weak[c]``
    and decoder MCC ``strong[c]`` (stored for two nulls, as a run stores them), diagonal ``floor``."""
    rows = []
    for c in weak:
        for a, b in (("topk", "topk"), ("topk", "standard"), ("standard", "standard")):
            cond = json.dumps({"sae.arch": [a, b], "sae.checkpoint": c}, sort_keys=True)
            cross = a != b
            base = {"analysis": "sae_pairs", "condition_json": cond, "replicate": 0, "seed_a": 0, "seed_b": 1}
            for null in ("repair", "shuffle"):
                rows.append({**base, "metric": "svcca", "pairing": "mutual", "null_kind": null,
                             "value": weak[c] if cross else floor})
            rows.append({**base, "metric": "decoder_mcc", "pairing": "", "null_kind": "",
                         "value": strong[c] if cross else floor})
    return rows


def test_weak_strong_universality_holds_when_svcca_is_early_and_stable_and_mcc_stays_low():
    found = FINDINGS["weak_strong_universality"](pair_rows({0.1: 0.78, 0.5: 0.84, 1.0: 0.85},
                                                           {0.1: 0.40, 0.5: 0.55, 1.0: 0.60}))
    n = found.numbers
    assert n["held"] and n["early"] and n["stable"] and n["strong_never_full"]
    assert n["early_share"] == pytest.approx(0.78 / 0.85) and n["strong_max"] == pytest.approx(0.60)
    assert n["weak"] == pytest.approx([0.78, 0.84, 0.85]) and "holds here" in found.sentences[-1]
    assert "start different and converge (0.780 at 0.1, 0.850 at 1)" in found.sentences[2]
    assert "seed floors at 1: SVCCA 0.950, decoder MCC 0.950" in found.sentences[2]


@pytest.mark.parametrize(("weak", "strong", "failed"), [
    ({0.1: 0.50, 0.5: 0.80, 1.0: 0.85}, {0.1: 0.4, 0.5: 0.5, 1.0: 0.6}, "early"),  # 0.50 / 0.85 < 90%
    ({0.1: 0.90, 0.5: 0.80, 1.0: 0.88}, {0.1: 0.4, 0.5: 0.5, 1.0: 0.6}, "stable"),  # falls 0.10
    ({0.1: 0.80, 0.5: 0.84, 1.0: 0.85}, {0.1: 0.5, 0.5: 0.8, 1.0: 0.93}, "strong_never_full"),  # MCC reaches 0.93
])
def test_weak_strong_universality_does_not_hold_when_one_part_fails(weak, strong, failed):
    found = FINDINGS["weak_strong_universality"](pair_rows(weak, strong))
    assert not found.numbers["held"] and not found.numbers[failed]
    assert all(found.numbers[k] for k in ("early", "stable", "strong_never_full") if k != failed)
    assert "does not hold here" in found.sentences[-1]


def dead_rows(arch: str, revival: str, masks: dict[float, set[int]], width: int = 10) -> list[dict]:
    """dead_latents rows of one run (seed 0) whose dead sets at each checkpoint are ``masks``."""
    rows, order = [], sorted(masks)
    for a, b in zip(order, order[1:]):
        da, db = masks[a], masks[b]
        cond = json.dumps({"sae.arch": arch, "sae.checkpoint": [a, b], "sae.revival": revival}, sort_keys=True)
        values = {"dead_fraction_a": len(da) / width, "dead_fraction_b": len(db) / width,
                  "dead_latent_stability": len(da & db) / len(db) if db else None,
                  "dead_latent_recovery": len(da - db) / len(da) if da else None}
        rows += [{"analysis": "dead_latents", "condition_json": cond, "replicate": 0, "seed_a": 0, "seed_b": 0,
                  "metric": k, "pairing": "", "value": v} for k, v in values.items()]
    return rows


def test_dead_latent_dynamics_summarises_each_architecture_and_revival():
    rows = dead_rows("topk", "none", {0.5: {1, 2, 3, 4}, 1.0: {1, 2, 3, 4, 5}}) + \
        dead_rows("topk", "resample", {0.5: {1, 2, 3, 4}, 1.0: {1}}) + \
        [{"analysis": "coverage", "condition_json": json.dumps({"sae.arch": "topk", "sae.checkpoint": 1.0,
                                                                "sae.revival": "none"}),
          "metric": "coverage", "value": 0.75, "seed_a": 0, "replicate": 0, "pairing": ""}]
    found = FINDINGS["dead_latent_dynamics"](rows)
    none, resample = found.numbers["topk/none"], found.numbers["topk/resample"]
    assert none["dlr"] == {0.5: 0.4, 1.0: 0.5} and none["dls"] == pytest.approx(0.8) and none["dlrec"] == 0
    assert resample["dls"] == 1.0 and resample["dlrec"] == pytest.approx(0.75) and resample["final_dlr"] == 0.1
    assert found.numbers["discovery_gap"] == {"topk/none": 0.25}
    text = " ".join(found.sentences)
    assert "topk, revival none" in text and "die early (DLS of the last step 0.80" in text
    assert "resample ends with 10.0% dead latents against none's 50.0%" in text
