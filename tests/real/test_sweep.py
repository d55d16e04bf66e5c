"""featgeom real compare end to end on the offline MiniLM pair (preset minilm-tiny), its resume,
and the bad inputs the issue lists: one error line, exit 2, nothing half-written."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from featgeom.cli import exit_code


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One user cache for the converted MiniLM-L3 (FEATGEOM_CACHE), shared by this module."""
    return tmp_path_factory.mktemp("featgeom-cache")


@pytest.fixture
def env(cache, monkeypatch):
    monkeypatch.setenv("FEATGEOM_CACHE", str(cache))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, cache) -> Path:
    """One minilm-tiny run (2 x 2 layer pairs, width-128 SAEs trained by featgeom)."""
    import os

    out = tmp_path_factory.mktemp("real") / "run"
    old = os.environ.get("FEATGEOM_CACHE")
    os.environ["FEATGEOM_CACHE"] = str(cache)
    try:
        assert exit_code(["real", "compare", "--preset", "minilm-tiny", "--out", str(out), "--quiet"]) == 0
    finally:
        if old is None:
            os.environ.pop("FEATGEOM_CACHE")
        else:
            os.environ["FEATGEOM_CACHE"] = old
    return out


def rows(out: Path) -> list[dict]:
    with sqlite3.connect(out / "results.sqlite") as con:
        con.row_factory = sqlite3.Row
        return [dict(r) for r in con.execute("SELECT * FROM results")]


@pytest.mark.slow
def test_minilm_tiny_writes_report_viewer_and_rows(tiny_run):
    found = rows(tiny_run)
    pairs = {(r["member_a"], r["member_b"]) for r in found if not r["pairing"].startswith("semantic:")}
    assert pairs == {(f"minilm-l6:L{a}", f"minilm-l3:L{b}") for a in (2, 5) for b in (1, 2)}
    for a, b in pairs:
        svcca = [r for r in found if (r["member_a"], r["member_b"]) == (a, b) and r["metric"] == "svcca"
                 and r["pairing"] == "mutual"]
        assert len(svcca) == 1 and svcca[0]["null_kind"] == "repair"
        assert 0 < svcca[0]["value"] <= 1 and 0 < svcca[0]["p_value"] <= 1
        kept = {r["metric"]: r["value"] for r in found if (r["member_a"], r["member_b"]) == (a, b)
                and r["metric"].startswith("kept_")}
        assert 0 < kept["kept_a"] <= 128 and 0 < kept["kept_b"] <= 128
    semantic = {r["pairing"] for r in found if r["pairing"].startswith("semantic:")}
    assert semantic == {f"semantic:{c}" for c in ("Time", "Calendar", "People/Roles", "Nature", "Emotions",
                                                   "MonthNames", "Countries", "Biology")}
    page = (tiny_run / "report.html").read_text()
    assert "Pipeline check" in page and "Layer pairs, mutual pairing" in page and "Semantic subspaces" in page
    assert page.count("data:image/png;base64") >= 10  # heatmaps embedded
    assert "Superposition proxy" in page and "synthetic tiny" in page
    viewer = (tiny_run / "viewer.html").read_text()
    assert "<script src=" not in viewer and "Plotly" in viewer
    header = (tiny_run / "results.csv").read_text().splitlines()[0]
    assert header.startswith("experiment,config_hash,analysis,condition,condition_json")
    import json

    layers = {(r["member_a"], r["member_b"]): json.loads(r["condition_json"]) for r in found}
    assert all(r["analysis"] == "layers" for r in found)
    assert all(set(c) == {"layer_a", "layer_b"} for c in layers.values())


@pytest.mark.slow
def test_rerun_resumes_without_recomputing(tiny_run, env, monkeypatch):
    import featgeom.real.sweep as sweep

    def refuse(*args, **kwargs):
        raise AssertionError("a stored layer pair was compared again")

    monkeypatch.setattr(sweep, "compare_layers", refuse)
    before = rows(tiny_run)
    assert exit_code(["real", "compare", "--preset", "minilm-tiny", "--out", str(tiny_run), "--quiet"]) == 0
    after = rows(tiny_run)
    assert len(after) == len(before)
    key = ("member_a", "member_b", "pairing", "metric", "null_kind")
    assert {tuple(r[k] for k in key): r["value"] for r in after} == {tuple(r[k] for k in key): r["value"]
                                                                     for r in before}


@pytest.mark.slow
def test_corrupted_cached_activations_are_refused(tiny_run, env, tmp_path, capsys):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    chunk = sorted((copy / "store").glob("activations-*/chunk-*.safetensors"))[0]
    data = bytearray(chunk.read_bytes())
    data[-10] ^= 0xFF
    chunk.write_bytes(bytes(data))
    assert exit_code(["real", "compare", "--preset", "minilm-tiny", "--out", str(copy), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and chunk.name in err[0] and "corrupt" in err[0]


def _fails(args: list[str], out: Path, capsys, *needles: str) -> None:
    assert exit_code(["real", "compare", *args, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    assert not out.exists(), "nothing may be written for bad input"


def test_different_tokenizers_are_refused(env, tmp_path, capsys):
    from tests.real.hub_fixtures import tiny_neox_dir

    neox = tiny_neox_dir(tmp_path / "neox")
    capsys.readouterr()  # the fixture's own progress output
    _fails(["--model-a", "minilm-l6", "--model-b", str(neox)], tmp_path / "out", capsys,
           "shared tokenizer")


def test_layer_out_of_range_is_refused(env, tmp_path, capsys):
    _fails(["--preset", "minilm-tiny", "--layers-b", "0,3"], tmp_path / "out", capsys,
           "layers_b", "layer 3 out of range", "0..2")


def test_sae_width_must_match_the_hooked_layer(env, tmp_path, capsys):
    import torch
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    folder = tmp_path / "saes" / "layer-2"
    TopKSAE(TopKSAEConfig(d_in=16, d_sae=32, k=4)).save_model(folder)
    assert torch.__version__
    _fails(["--preset", "minilm-tiny", "--layers-a", "2", "--sae-a", str(tmp_path / "saes" / "layer-{layer}")],
           tmp_path / "out", capsys, "d_in=16", "width 384")


@pytest.mark.parametrize("corpus, needle", [("empty", "empty"), ("short", "windows")])
def test_empty_or_short_corpus_is_refused(env, tmp_path, capsys, corpus, needle):
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("" if corpus == "empty" else "just a few words here")
    _fails(["--preset", "minilm-tiny", "--corpus", str(texts)], tmp_path / "out", capsys, needle)


def test_uncached_hub_model_is_one_line_at_once(env, tmp_path, capsys):
    _fails(["--model-a", "EleutherAI/pythia-70m", "--model-b", "EleutherAI/pythia-160m"], tmp_path / "out",
           capsys, "EleutherAI/pythia-70m", "HF_HUB_OFFLINE")


def test_json_config_file_and_flags_combine(env, tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"n_perm": 3}))
    _fails(["--preset", "minilm-tiny", "--config", str(cfg)], tmp_path / "out", capsys, "n_perm", "19")


def test_layer_grid_places_values_and_finds_the_best_pair():
    from types import SimpleNamespace

    from featgeom.real.sweep import Side, best_pair, layer_grid

    a = Side("a", SimpleNamespace(name="A"), None, (0, 3))
    b = Side("b", SimpleNamespace(name="B"), None, (1, 2, 4))
    found = [{"member_a": f"A:L{la}", "member_b": f"B:L{lb}", "pairing": "mutual", "metric": "svcca",
              "value": la + lb / 10, "p_value": 0.01, "null_kind": "repair"} for la in (0, 3) for lb in (1, 2, 4)]
    grid = layer_grid(found, a, b, "mutual", "svcca")
    assert grid.shape == (3, 2) and grid[2, 1] == pytest.approx(3.4) and grid[0, 0] == pytest.approx(0.1)
    assert best_pair(found, "mutual", a, b) == (3, 4)
    assert np.all(np.isnan(layer_grid(found, a, b, "many_to_one", "svcca")))
    assert best_pair(found, "many_to_one", a, b) is None


@pytest.mark.slow
def test_paper_preset_runs_through_the_hub_code_path(tmp_path, monkeypatch, env):
    """The pythia-70m-160m preset as a user runs it, offline: tiny random GPT-NeoX models installed
    in a local hub cache under Pythia's ids, EleutherAI sparsify SAEs (eai-sparsify's own save)
    in hub repos under the paper's names, read through the same loaders; every layer pair with
    the valid null and the paper's shuffled-pairing null, legacy SVCCA beside the correct one."""
    import hashlib

    import torch
    from huggingface_hub import constants
    from sparsify import Sae, SaeConfig

    from featgeom.real.config import real_config
    from featgeom.real.sweep import run_sweep
    from tests.real.hub_fixtures import fake_hub_snapshot, tiny_neox_dir

    cache = tmp_path / "hub"
    for seed, model in enumerate(("pythia-70m", "pythia-160m")):
        fake_hub_snapshot(cache, tiny_neox_dir(tmp_path / "models", seed=seed), repo_id=f"EleutherAI/{model}")
        commit = hashlib.sha1(model.encode()).hexdigest()
        repo = cache / f"models--EleutherAI--sae-{model}-32k"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        for layer in range(2):
            torch.manual_seed(10 * seed + layer)
            Sae(64, SaeConfig(num_latents=256, k=8)).save_to_disk(repo / "snapshots" / commit / f"layers.{layer}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    cfg = real_config("pythia-70m-160m", {"corpus": "news", "n_windows": 24, "window": 64, "n_perm": 19,
                                          "semantic_perm": 99, "viewer_projection": "pca", "synthetic_scale": None})
    result = run_sweep(cfg, tmp_path / "out")
    values = {(r["member_a"], r["member_b"], r["pairing"], r["metric"], r["null_kind"]) for r in result.rows}
    for la in range(2):
        for lb in range(2):
            for metric in ("svcca", "svcca_legacy", "rsa"):
                for null in ("repair", "shuffle"):
                    key = (f"EleutherAI/pythia-70m:L{la}", f"EleutherAI/pythia-160m:L{lb}", "mutual", metric, null)
                    assert key in values, key
    assert result.report.is_file() and (tmp_path / "out" / "viewer.html").is_file()
