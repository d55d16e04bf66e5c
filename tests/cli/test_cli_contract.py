"""The command line's contract, for every command: usage errors, bad values, unwritable outputs,
interrupts and internal errors each give their exit code (2, 2, 2, 130, 1) and one message line,
never a bare traceback (README "Exit codes")."""

from __future__ import annotations

import pytest
import yaml

from featgeom.family import FamilyConfig, build_family, save
from featgeom.sae import train
from featgeom.sae.recipes import recipe

SAE_FAST = ["--arch", "topk", "--width", "48", "--l0", "4", "--samples", "8192", "--batch-size", "512",
            "--eval-samples", "2048", "--no-progress"]


@pytest.fixture(scope="module")
def stored(tiny_world, tmp_path_factory):
    """A family config file, the family stored, and one small SAE trained on its base."""
    root = tmp_path_factory.mktemp("contract")
    config = {"name": "contract", "world": tiny_world.config.to_dict(), "variants": [{"name": "rot", "basis_rotation_angle": 30}]}
    (root / "family.yaml").write_text(yaml.safe_dump(config))
    fam = build_family(FamilyConfig.from_dict(config), world=tiny_world)
    save(fam, root / "family")
    write_sparsify_sae(root / "sparsify")
    write_results(root / "results")
    sae = train(fam, "base", recipe("topk", fam, "base", samples=8192, width=48, l0=4, batch_size=512),
                store=root / "store", eval_samples=2048)
    return root, sae.path


def write_results(out) -> None:
    """An experiment output directory holding a results database with one row (for `export`)."""
    from featgeom.store.results import ResultsDB

    row = {"experiment": "x", "config_hash": "h", "analysis": "recovery", "condition": "", "condition_json": "{}",
           "member_a": "base", "member_b": "base", "seed_a": 0, "seed_b": 0, "pairing": "", "metric": "mcc",
           "value": 0.5, "p_value": None, "null_mean": None, "null_std": None, "featgeom_version": "0",
           "sae_lens_version": "0"}
    ResultsDB(out / "results.sqlite").record_job("h", "job", "recovery", 1.0, {}, [row])


def write_sparsify_sae(path) -> None:
    """A small EleutherAI sparsify SAE folder written by eai-sparsify's own save."""
    import torch
    from sparsify import Sae, SaeConfig

    torch.manual_seed(0)
    Sae(16, SaeConfig(num_latents=32, k=4)).save_to_disk(path)


def valid_args(command: str, root, sae, out) -> list[str]:
    """A valid invocation of ``command`` (before the option under test is appended)."""
    return {
        "family create": [root / "family.yaml", "--out", out],
        "family show": [root / "family"],
        "run": ["quickstart", "--preset", "tiny", "--quiet", "--out", out],
        "experiments": [],
        "analyses": [],
        "export": [root / "results", "--to", out / "results.parquet"],
        "compare": [sae, sae, "--family", root / "family", "--samples", "2000", "--n-perm", "19"],
        "sae train": ["--family", root / "family", *SAE_FAST, "--out", out],
        "sae eval": [sae, "--family", root / "family", "--eval-samples", "2048"],
        "sae table": ["--preset", "tiny", "--arch", "topk", "--out", out],
        "real compare": ["--preset", "minilm-tiny", "--quiet", "--out", out],
        "real presets": [],
        "real convert-sparsify": [root / "sparsify", out],
    }[command]


COMMANDS = ("family create", "family show", "run", "experiments", "analyses", "export", "compare", "sae train", "sae eval", "sae table",
            "real compare", "real presets", "real convert-sparsify")
WITH_OUT = ("family create", "run", "sae train", "sae table", "real compare")
# where each command can be interrupted: a function it calls after parsing its arguments
DEEP_CALL = {
    "family create": "featgeom.family.build_family",
    "family show": "featgeom.family.load",
    "run": "featgeom.experiments.runner.run_experiment",
    "experiments": "featgeom.experiments.spec.registry",
    "analyses": "featgeom.experiments.analyses.analysis_table",
    "export": "featgeom.store.results.ResultsDB.export_parquet",
    "compare": "featgeom.family.load",
    "sae train": "featgeom.sae.train",
    "sae eval": "featgeom.sae.load",
    "sae table": "featgeom.sae.recipes.recipe_table",
    "real compare": "featgeom.real.sweep.run_sweep",
    "real presets": "featgeom.real.config.preset_summaries",
    "real convert-sparsify": "featgeom.real.saes.convert_sparsify",
}
BAD_VALUE = {
    "family create": ["--out", "{out}", "{root}"],  # the config argument is a directory
    "family show": ["{root}/family.yaml"],  # a file, not an artifact directory
    "run": ["quickstart", "--workers", "abc"],
    "experiments": ["extra"],
    "analyses": ["extra"],
    "export": ["{root}/results", "--format", "xml", "--to", "{out}/results.xml"],
    "compare": ["{sae}", "{sae}", "--family", "{root}/family", "--n-perm", "abc"],
    "sae train": ["--family", "{root}/family", "--arch", "topk", "--width", "abc", "--out", "{out}"],
    "sae eval": ["{sae}", "--family", "{root}/family", "--eval-samples", "abc"],
    "sae table": ["--seed", "abc", "--out", "{out}"],
    "real compare": ["--preset", "minilm-tiny", "--n-perm", "abc", "--out", "{out}"],
    "real presets": ["extra"],
    "real convert-sparsify": ["{root}/family", "{out}"],  # a family artifact, not a sparsify SAE
}


def assert_one_error_line(err: str, starts: str) -> str:
    """No traceback, exactly one line starting with ``starts``; that line."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith(starts)]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("command", ["", "family", "sae", "family create", "family show", "run", "compare",
                                     "sae train", "sae eval"])
def test_missing_arguments_show_usage_exit_2(run_cli, command):
    code, out, err = run_cli(*command.split())
    assert code == 2
    assert "Usage: featgeom" in out + err and "Traceback" not in out + err
    if command not in ("", "family", "sae"):  # groups print their help; commands say what is missing
        assert "Missing" in assert_one_error_line(err, "Error:")


def test_unknown_command_exit_2(run_cli):
    code, _, err = run_cli("bogus")
    assert code == 2
    assert "No such command 'bogus'" in assert_one_error_line(err, "Error:")


@pytest.mark.parametrize("command", COMMANDS)
def test_unknown_option_exit_2(run_cli, stored, tmp_path, command):
    root, sae = stored
    code, _, err = run_cli(*command.split(), *valid_args(command, root, sae, tmp_path / "out"), "--bogus")
    assert code == 2
    assert "No such option: --bogus" in assert_one_error_line(err, "Error:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_bad_value_exit_2_nothing_written(run_cli, stored, tmp_path, command):
    root, sae = stored
    args = [a.format(root=root, sae=sae, out=tmp_path / "out") for a in BAD_VALUE[command]]
    code, _, err = run_cli(*command.split(), *args)
    assert code == 2
    assert_one_error_line(err, "Error:" if "abc" in args or "extra" in args else "error:")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", WITH_OUT)
def test_unwritable_out_exit_2_before_any_work(run_cli, stored, unwritable, command, monkeypatch):
    root, sae = stored
    monkeypatch.setattr("featgeom.sae.train", _must_not_run)
    monkeypatch.setattr("featgeom.family.build_family", _must_not_run)
    code, _, err = run_cli(*command.split(), *valid_args(command, root, sae, unwritable))
    assert code == 2
    assert "--out: cannot write to" in assert_one_error_line(err, "error:")


def test_out_is_a_file_or_another_artifact(run_cli, stored, tmp_path):
    root, sae = stored
    code, _, err = run_cli("family", "create", root / "family.yaml", "--out", root / "family.yaml")
    assert code == 2 and "exists and is not a directory" in assert_one_error_line(err, "error:")
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"name": "other", "world": "tiny"}))
    code, _, err = run_cli("family", "create", other, "--out", root / "family")
    assert code == 2 and "already holds another artifact" in assert_one_error_line(err, "error:")
    code, out, err = run_cli("family", "create", root / "family.yaml", "--out", root / "family")
    assert code == 0, err  # the same artifact again is fine (content-addressed, immutable)


@pytest.mark.parametrize("command", COMMANDS)
def test_interrupt_exits_130_with_one_line(run_cli, stored, tmp_path, monkeypatch, command):
    root, sae = stored
    monkeypatch.setattr(DEEP_CALL[command], _interrupt)
    code, _, err = run_cli(*command.split(), *valid_args(command, root, sae, tmp_path / "out"))
    assert code == 130
    assert "rerun the same command to resume" in assert_one_error_line(err, "interrupted")


@pytest.mark.parametrize("command", COMMANDS)
def test_internal_error_exits_1_with_a_request_to_report(run_cli, stored, tmp_path, monkeypatch, command):
    root, sae = stored
    monkeypatch.setattr(DEEP_CALL[command], _crash)
    code, _, err = run_cli(*command.split(), *valid_args(command, root, sae, tmp_path / "out"))
    assert code == 1
    assert "Traceback" in err and "RuntimeError: planted" in err
    assert "please report it" in err.strip().splitlines()[-1]


def test_version(run_cli):
    import featgeom

    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"featgeom {featgeom.__version__}"


def test_run_help_keeps_the_default_of_out(run_cli):
    code, out, _ = run_cli("run", "--help")
    assert code == 0
    assert "runs/NAME-PRESET" in " ".join(out.split())


def _must_not_run(*_args, **_kwargs):
    raise AssertionError("work started before the destination was checked")


def _interrupt(*_args, **_kwargs):
    raise KeyboardInterrupt


def _crash(*_args, **_kwargs):
    raise RuntimeError("planted")
