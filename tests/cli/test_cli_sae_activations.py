"""``featgeom sae train --activations DIR --layer L``: trains on a stored activation set (written by
featgeom.real.activations from a small duck-typed model, no download), and the bad combinations
of --family / --preset / --activations / --layer / --member (exit 2, one error line, nothing written)."""

import json
import warnings

import numpy as np
import pytest

activations = pytest.importorskip("featgeom.real.activations", reason="featgeom.real.activations (helper B) "
                                  "is not importable: nothing to load an activation set with")

FAST = ("--arch", "topk", "--width", "32", "--l0", "3", "--samples", "8192", "--batch-size", "256", "--no-progress")
D_MODEL, VOCAB = 16, 50


class _Tokenizer:
    """The little of a tokenizer extraction reads: its size and special ids (CLS 0, SEP 1)."""

    cls_token_id, sep_token_id = 0, 1
    bos_token_id = eos_token_id = pad_token_id = None

    def __len__(self) -> int:
        return VOCAB


class _Model:
    """A RealModel stand-in: layer l's residual at a position = a fixed random embedding of its
    token (layer-specific) plus a small position term."""

    identity = {"name": "cli-test-model", "version": 1}
    name, tokenizer, n_layers, d_model, device = "cli-test-model", _Tokenizer(), 2, D_MODEL, "cpu"

    def residual(self, input_ids, attention_mask, layers):
        import torch

        out = {}
        for layer in layers:
            table = torch.from_numpy(np.random.default_rng(layer).standard_normal((VOCAB, D_MODEL)).astype(np.float32))
            pos = torch.arange(input_ids.shape[1], dtype=torch.float32)[None, :, None] * 0.01
            out[layer] = table[input_ids] + pos
        return out


@pytest.fixture(scope="module")
def acts_dir(tmp_path_factory):
    """64 windows of 32 tokens (CLS ... SEP): 1,920 kept positions, layers 0 and 1."""
    rng = np.random.default_rng(0)
    ids = rng.integers(2, VOCAB, size=(64, 32))
    ids[:, 0], ids[:, -1] = 0, 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        aset = activations.extract_activations(_Model(), ids, [0, 1], tmp_path_factory.mktemp("acts"))
    assert aset.n_tokens == 64 * 30
    return aset.path


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_train_on_a_layer_prints_the_path_and_metrics(run_cli, acts_dir, tmp_path):
    from featgeom.sae import load

    code, out, err = run_cli("sae", "train", "--activations", acts_dir, "--layer", "1", *FAST, "--out", tmp_path)
    assert code == 0, err
    row = last_json(out)
    aset = activations.load_activations(acts_dir)
    assert row["activations"] == aset.id and row["layer"] == 1 and row["arch"] == "topk"
    assert row["l0"] == pytest.approx(3.0) and row["explained_variance"] > 0.3
    assert {"mse", "dead_fraction"} <= set(row) and "mcc" not in row
    trained = load(row["path"])
    assert trained.id == row["id"] and trained.family_id is None
    config = json.loads((trained.path / "config.json").read_text())
    assert config["source"] == {"activations": aset.id, "layer": 1, "d_model": D_MODEL}
    assert config["data"]["rows"] == 1920 and config["data"]["eval_rows"] == 512
    again = last_json(run_cli("sae", "train", "--activations", acts_dir, "--layer", "1", *FAST, "--out", tmp_path)[1])
    assert again["id"] == row["id"]
    other = last_json(run_cli("sae", "train", "--activations", acts_dir, "--layer", "0", *FAST, "--out", tmp_path)[1])
    assert other["id"] != row["id"]


@pytest.mark.parametrize(("args", "message"), [
    (("--activations", "{acts}", "--family", "{acts}", "--layer", "0"),
     "error: --family, --preset: give exactly one of --family, --preset, --activations"),
    (("--activations", "{acts}", "--preset", "tiny", "--layer", "0"), "error: --family, --preset: give exactly one"),
    (("--layer", "0"), "error: --family, --preset: give exactly one"),
    (("--activations", "{acts}",), "error: --layer: required with --activations"),
    (("--preset", "tiny", "--layer", "0"), "error: --layer: only with --activations"),
    (("--activations", "{acts}", "--layer", "0", "--member", "base"), "error: --member: only with --family"),
    (("--activations", "{acts}", "--layer", "7"), "error: --layer: the activations "),
    (("--activations", "{acts}", "--layer", "0", "--width", "0"), "error: width: must be >= 1"),
    (("--activations", "{missing}", "--layer", "0"), "error: "),
])
def test_bad_combinations_one_error_line_exit_2_nothing_written(run_cli, acts_dir, tmp_path, args, message):
    filled = [a.format(acts=acts_dir, missing=tmp_path / "nope") for a in args]
    code, out, err = run_cli("sae", "train", *FAST, *filled, "--out", tmp_path / "s")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), err
    assert out == "" and not (tmp_path / "s").exists()
