"""featgeom.real.models and the MiniLM-L3 ONNX conversion: residual semantics, backends, tokenizers,
errors, the converted-model store, and hub ids through a (fake) local hub cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from featgeom.errors import ArtifactError, ConfigError, DataError, ShapeError
from featgeom.real import _onnx_bert
from featgeom.real.models import check_same_tokenizer, load_model
from featgeom.real.tokens import special_ids as special_token_ids
from tests.real import hub_fixtures

L6_SAFETENSORS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@pytest.fixture(scope="session")
def store(tmp_path_factory) -> Path:
    """A store holding the converted MiniLM-L3 (converted once per session)."""
    root = tmp_path_factory.mktemp("store")
    _onnx_bert.converted_model_dir(root)
    return root


@pytest.fixture(scope="session")
def l6():
    return load_model("minilm-l6")


@pytest.fixture(scope="session")
def l3(store):
    return load_model("minilm-l3", store=store)


@pytest.fixture(scope="session")
def neox_dir(tmp_path_factory) -> Path:
    return hub_fixtures.tiny_neox_dir(tmp_path_factory.mktemp("neox"))


@pytest.fixture(scope="session")
def neox(neox_dir):
    return load_model(str(neox_dir))


def bert_batch(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Two short sentences, the first right-padded."""
    enc = tokenizer(["hello world", "the cat sat on the mat today"], padding=True, return_tensors="pt")
    assert int(enc["attention_mask"].sum()) < enc["attention_mask"].numel()  # there is padding
    return enc["input_ids"], enc["attention_mask"]


def neox_batch(tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    a = tokenizer("The river runs past the old mill.")["input_ids"]
    b = tokenizer("A dog sleeps.")["input_ids"]
    ids = torch.tensor([a, b + [0] * (len(a) - len(b))])
    mask = torch.tensor([[1] * len(a), [1] * len(b) + [0] * (len(a) - len(b))])
    return ids, mask


def hf_hidden_states(path: Path, ids, mask, causal: bool):
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if causal else AutoModel
    model = cls.from_pretrained(str(path), attn_implementation="eager").eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states


# --------------------------------------------------------------------------------------------- residual


@pytest.mark.parametrize("which", ["l6", "l3"])
def test_bert_residual_is_hidden_states_after_each_block(which, request):
    model = request.getfixturevalue(which)
    ids, mask = bert_batch(model.tokenizer)
    layers = list(range(model.n_layers))
    res = model.residual(ids, mask, layers)
    hs = hf_hidden_states(model.path, ids, mask, causal=False)
    assert len(hs) == model.n_layers + 1
    for layer in layers:
        assert res[layer].shape == (2, ids.shape[1], 384) and res[layer].dtype == torch.float32
        assert torch.equal(res[layer], hs[layer + 1])
    assert not torch.allclose(res[0], hs[0])  # layer 0 is block 0's output, not the embeddings


def test_model_facts(l6, l3, neox):
    assert (l6.n_layers, l6.d_model, l6.is_causal) == (6, 384, False)
    assert (l3.n_layers, l3.d_model, l3.is_causal) == (3, 384, False)
    assert (neox.n_layers, neox.d_model, neox.is_causal) == (2, 64, True)
    assert l6.identity["files"]["model.safetensors"] == L6_SAFETENSORS_SHA256
    manifest = json.loads((l3.path / "manifest.json").read_text())
    assert l3.identity["files"]["model.safetensors"] == manifest["files"]["model.safetensors"]
    assert l6.identity != l3.identity
    json.dumps(l6.identity), json.dumps(neox.identity)  # JSON-ready


def test_neox_residual_is_block_output_not_final_norm(neox):
    ids, mask = neox_batch(neox.tokenizer)
    res = neox.residual(ids, mask, [0, 1])
    # an independent forward hook on the blocks of a freshly loaded model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(neox.path), attn_implementation="eager").eval()
    seen = {}
    hooks = [block.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, o[0] if isinstance(o, tuple) else o))
             for k, block in enumerate(model.gpt_neox.layers)]
    with torch.no_grad():
        hs = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for h in hooks:
        h.remove()
    assert torch.equal(res[0], seen[0]) and torch.equal(res[1], seen[1])
    assert torch.equal(res[0], hs[1])
    # HF's last hidden_states entry is after the final LayerNorm: not the residual stream
    assert (hs[2] - res[1]).abs().max() > 0.1


def test_residual_stops_early_with_same_numbers(l6):
    ids, mask = bert_batch(l6.tokenizer)
    assert torch.equal(l6.residual(ids, mask, [2])[2], l6.residual(ids, mask, [2, 5])[2])


# --------------------------------------------------------------------------------------------- backends


@pytest.mark.parametrize("which", ["l6", "neox"])
def test_bridge_backend_gives_the_same_numbers(which, request):
    model = request.getfixturevalue(which)
    bridge = load_model(str(model.path), backend="bridge")
    assert (bridge.n_layers, bridge.d_model, bridge.is_causal) == (model.n_layers, model.d_model, model.is_causal)
    ids, mask = (neox_batch if which == "neox" else bert_batch)(model.tokenizer)
    layers = list(range(model.n_layers))
    a, b = model.residual(ids, mask, layers), bridge.residual(ids, mask, layers)
    for layer in layers:
        assert b[layer].shape == a[layer].shape == (*ids.shape, model.d_model)  # no BOS was prepended
        torch.testing.assert_close(b[layer], a[layer], rtol=0, atol=1e-5)
    assert bridge.identity == model.identity


def test_a_bridge_that_cannot_boot_is_one_config_error(neox, monkeypatch):
    from transformer_lens.model_bridge import TransformerBridge

    def fail(*args, **kwargs):
        raise ValueError("Unsupported architecture: FooForCausalLM\nmore detail")

    monkeypatch.setattr(TransformerBridge, "boot_transformers", fail)
    with pytest.raises(ConfigError, match=r"backend 'bridge': TransformerLens cannot load .*Unsupported "
                                          r"architecture: FooForCausalLM\); use backend 'hf'$"):
        load_model(str(neox.path), backend="bridge")


# --------------------------------------------------------------------------------------------- tokenizers


def test_minilm_pair_share_a_tokenizer(l6, l3):
    check_same_tokenizer(l6.tokenizer, l3.tokenizer)


def test_different_tokenizers_are_refused_naming_the_difference(l6, neox):
    with pytest.raises(ConfigError, match=r"model_a has 30522 tokens, model_b has 384.*shared tokenizer"):
        check_same_tokenizer(l6.tokenizer, neox.tokenizer)
    from transformers import AutoTokenizer

    padded = AutoTokenizer.from_pretrained(str(neox.path), pad_token=hub_fixtures.PADDING)
    with pytest.raises(ConfigError, match=r"pad token is None \(id None\) in a, '<\|padding\|>' \(id 1\) in b"):
        check_same_tokenizer(neox.tokenizer, padded, names=("a", "b"))


def test_special_token_ids(l6, neox):
    tok = l6.tokenizer
    assert special_token_ids(tok) == {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id} == {101, 102, 0}
    assert special_token_ids(neox.tokenizer) == {0}  # <|endoftext|> is BOS and EOS; no pad token


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("layers, match", [([6], r"layers: 6 is out of range .*valid layers 0 to 5"),
                                           ([-1], r"layers: -1 is out of range"),
                                           ([], r"layers: give at least one"),
                                           (["2"], r"layers: '2' is not an int")])
def test_layer_out_of_range(l6, layers, match):
    ids, mask = bert_batch(l6.tokenizer)
    with pytest.raises(ConfigError, match=match):
        l6.residual(ids, mask, layers)


def test_bad_inputs(l6):
    ids, mask = bert_batch(l6.tokenizer)
    with pytest.raises(ShapeError, match="attention_mask"):
        l6.residual(ids, mask[:, :-1], [0])
    with pytest.raises(ShapeError, match="input_ids"):
        l6.residual(ids[0], mask[0], [0])
    with pytest.raises(DataError, match=r"input_ids: token ids must lie in \[0, 30522\)"):
        l6.residual(ids + 30522, mask, [0])


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_a_config_error():
    with pytest.raises(ConfigError, match=r"device: 'cuda' asked for, but this machine has no CUDA"):
        load_model("minilm-l6", device="cuda")


def test_default_store_follows_featgeom_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATGEOM_CACHE", str(tmp_path))
    assert _onnx_bert.default_store() == tmp_path
    monkeypatch.delenv("FEATGEOM_CACHE")
    assert _onnx_bert.default_store() == Path.home() / ".cache" / "featgeom"


def test_bad_specs_and_backend(tmp_path):
    with pytest.raises(ConfigError, match="backend: expected one of hf, bridge"):
        load_model("minilm-l6", backend="tl")
    with pytest.raises(ConfigError, match="not a directory, not a hub id"):
        load_model("./no/such/dir")
    with pytest.raises(ConfigError, match="model: expected a model name"):
        load_model("")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        load_model(str(tmp_path / "file.txt"))
    with pytest.raises(ConfigError, match="has no config.json"):
        load_model(str(tmp_path))


# --------------------------------------------------------------------------------------------- conversion


def test_conversion_matches_the_onnx_graph(l3):
    import onnx
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(_onnx_bert.onnx_file()))
    output = _onnx_bert.last_hidden_output(proto.graph)
    ids, mask = bert_batch(l3.tokenizer)
    (expected,) = ReferenceEvaluator(proto).run([output], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
    assert expected.shape == (*ids.shape, 384)
    got = l3.residual(ids, mask, [2])[2].numpy()
    real = mask.numpy().astype(bool)
    assert np.abs(got - expected)[real].max() < 1e-4
    config = json.loads((l3.path / "config.json").read_text())
    assert {k: config[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "intermediate_size", "max_position_embeddings", "type_vocab_size",
                                   "hidden_act")} == {
        "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 3, "num_attention_heads": 12,
        "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_act": "gelu"}


def test_converted_model_is_reused_not_reconverted(store, monkeypatch):
    path = store / "models" / _onnx_bert.converted_dir_name()
    before = (path / "model.safetensors").stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(_onnx_bert, "convert", refuse)
    assert _onnx_bert.converted_model_dir(store) == path
    assert (path / "model.safetensors").stat().st_mtime_ns == before


def test_corrupted_converted_model_is_an_artifact_error(store, tmp_path):
    src = store / "models" / _onnx_bert.converted_dir_name()
    dst = tmp_path / "models" / src.name
    dst.mkdir(parents=True)
    for file in src.iterdir():
        (dst / file.name).write_bytes(file.read_bytes())
    with open(dst / "model.safetensors", "r+b") as fh:
        fh.seek(5_000_000)
        byte = fh.read(1)
        fh.seek(5_000_000)
        fh.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ArtifactError, match=r"model.safetensors is corrupted or truncated"):
        load_model("minilm-l3", store=tmp_path)
    (dst / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="missing manifest.json"):
        load_model("minilm-l3", store=tmp_path)


def test_onnx_with_another_sha256_is_not_converted(tmp_path, monkeypatch):
    with pytest.raises(ArtifactError, match="has sha256 .* expected 0000"):
        _onnx_bert.verified_onnx_file(expected="0" * 64)
    monkeypatch.setattr(_onnx_bert.verified_onnx_file, "__defaults__", (None, "f" * 64))
    with pytest.raises(ArtifactError, match="reinstall"):
        _onnx_bert.converted_model_dir(tmp_path)
    assert not (tmp_path / "models" / _onnx_bert.converted_dir_name()).exists()


# --------------------------------------------------------------------------------------------- hub ids

HUB_SCRIPT = textwrap.dedent("""
    import json, sys, time
    import numpy as np, torch
    from featgeom.errors import FeatgeomError
    from featgeom.real.models import load_model
    ids, mask = torch.tensor(json.loads(sys.argv[1])), torch.tensor(json.loads(sys.argv[2]))
    model = load_model({cached!r})
    np.save(sys.argv[3], model.residual(ids, mask, [0, 1])[1].numpy())
    start = time.perf_counter()
    try:
        load_model({missing!r})
        error = None
    except FeatgeomError as exc:
        error = type(exc).__name__ + ": " + str(exc)
    print(json.dumps({{"identity": model.identity, "path": str(model.path), "error": error,
                      "seconds": time.perf_counter() - start}}))
""")


def test_hub_id_loads_from_the_cache_and_an_uncached_id_fails_at_once(neox, tmp_path):
    cache = tmp_path / "hub"
    snapshot = hub_fixtures.fake_hub_snapshot(cache, neox.path)
    ids, mask = neox_batch(neox.tokenizer)
    script = HUB_SCRIPT.format(cached=hub_fixtures.PYTHIA_ID, missing="EleutherAI/pythia-160m-deduped")
    out = tmp_path / "res.npy"
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(ids.tolist()), json.dumps(mask.tolist()),
                           str(out)], env=hub_fixtures.hub_env(cache), capture_output=True, text=True,
                          timeout=900, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    # (a) the cached id: its snapshot in the given cache, the same numbers as the folder itself
    assert Path(report["path"]) == snapshot
    assert report["identity"]["hub_id"] == hub_fixtures.PYTHIA_ID
    assert report["identity"]["commit"] == hub_fixtures.FAKE_COMMIT
    assert report["identity"]["files"] == neox.identity["files"]  # blob names are the sha256s
    np.testing.assert_array_equal(np.load(out), neox.residual(ids, mask, [1])[1].numpy())
    # (b) an uncached id: one ConfigError line naming the id and offline mode, at once
    error = report["error"]
    assert error.startswith("ConfigError: model: 'EleutherAI/pythia-160m-deduped' is not in the local")
    assert "HF_HUB_OFFLINE" in error and str(cache) in error and "\n" not in error
    assert report["seconds"] < 20

