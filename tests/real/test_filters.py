"""featgeom.real.filters: the non-concept filter really filters (the paper's code was a no-op)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, ShapeError
from featgeom.real.filters import (
    NON_CONCEPT_TOKENS,
    concept_keep,
    dead_latents,
    non_concept_latents,
    non_concept_token_mask,
)
from featgeom.real.tokens import top_activating_tokens
from tests.real.test_tokens import byte_bpe_tokenizer, ids_of, minilm_tokenizer


def test_appendix_f_list_verbatim():
    assert NON_CONCEPT_TOKENS == ("\\n", "\n", "", " ", ".", ",", "!", "?", "-")
    assert len(NON_CONCEPT_TOKENS[0]) == 2  # backslash + n, not a newline


def one(tok, text: str) -> int:
    (i,) = ids_of(tok, text)
    return i


def test_planted_non_concept_latents_wordpiece():
    tok = minilm_tokenizer()
    king, queen, dot, comma, bang, dash = (one(tok, w) for w in ("king", "queen", ".", ",", "!", "-"))
    top = np.array([
        [king, queen, king, -1, -1],      # 0 concept
        [king, queen, dot, -1, -1],       # 1 "." -> non-concept
        [comma, king, king, king, king],  # 2 ","
        [tok.cls_token_id, king, -1, -1, -1],  # 3 CLS (structural special)
        [tok.pad_token_id, -1, -1, -1, -1],    # 4 PAD
        [-1, -1, -1, -1, -1],             # 5 dead
        [queen, bang, -1, -1, -1],        # 6 "!"
        [dash, queen, -1, -1, -1],        # 7 "-"
        [queen, tok.unk_token_id, -1, -1, -1],  # 8 UNK is not in the list: concept
    ])
    nc = non_concept_latents(top, tok)
    np.testing.assert_array_equal(nc, [0, 1, 1, 1, 1, 0, 1, 1, 0])
    np.testing.assert_array_equal(dead_latents(top), [0, 0, 0, 0, 0, 1, 0, 0, 0])
    keep = concept_keep(top, tok)
    np.testing.assert_array_equal(keep, [1, 0, 0, 0, 0, 0, 0, 0, 1])
    # the filter removes something: the paper's for/else no-op would keep every alive latent
    assert keep.sum() < (~dead_latents(top)).sum()


def test_whitespace_marker_and_newline_tokens_byte_level():
    tok = byte_bpe_tokenizer()
    king = one(tok, " king")
    space_dot = one(tok, " .")  # "Ġ." reads " .", counts as "."
    newline2 = one(tok, "\n\n")  # "ĊĊ": whitespace only
    space = one(tok, " ")
    backslash, n = ids_of(tok, "\\n")  # the literal "\n" text is two tokens here: "\\" and "n"
    eot = tok.eos_token_id
    top = np.array([
        [king, space_dot], [king, newline2], [space, king], [eot, king], [king, king],
        [backslash, n],
    ])
    np.testing.assert_array_equal(non_concept_latents(top, tok), [1, 1, 1, 1, 0, 0])
    # a literal backslash-n single token is caught through extra ids or texts
    mask = non_concept_token_mask(np.array([backslash, n, king]), tok, extra=["\\"])
    np.testing.assert_array_equal(mask, [True, False, False])


def test_extra_tokens_and_ids():
    tok = minilm_tokenizer()
    king, colon = one(tok, "king"), one(tok, ":")
    top = np.array([[king, colon], [king, king]])
    np.testing.assert_array_equal(non_concept_latents(top, tok), [0, 0])
    np.testing.assert_array_equal(non_concept_latents(top, tok, extra=[":"]), [1, 0])
    np.testing.assert_array_equal(non_concept_latents(top, tok, extra=[king]), [1, 1])
    with pytest.raises(ConfigError, match="extra"):
        non_concept_latents(top, tok, extra=":")
    with pytest.raises(ConfigError, match="extra"):
        non_concept_latents(top, tok, extra=[1.5])


def test_end_to_end_from_activations():
    """Latents planted to fire on "." positions are dropped; latents on words are kept."""
    tok = minilm_tokenizer()
    token_ids = np.array(ids_of(tok, "the king sat . the queen ran , a dog ."))
    n = token_ids.size
    acts = np.zeros((n, 4), dtype=np.float32)
    dots = np.flatnonzero(np.isin(token_ids, ids_of(tok, ". ,")))
    words = np.setdiff1d(np.arange(n), dots)
    acts[dots, 0] = 1.0                    # fires only on punctuation
    acts[words[:3], 1] = [3.0, 2.0, 1.0]   # words only
    acts[words[0], 2], acts[dots[0], 2] = 5.0, 0.1  # a word, and a "." in its top 5
    keep = concept_keep(top_activating_tokens(sp.csr_matrix(acts), token_ids, k=5), tok)
    np.testing.assert_array_equal(keep, [False, True, False, False])  # latent 3 never fires


def test_bad_top_tokens():
    tok = minilm_tokenizer()
    with pytest.raises(ShapeError, match="top_tokens"):
        non_concept_latents(np.array([1, 2]), tok)
    with pytest.raises(ConfigError, match="top_tokens"):
        concept_keep(np.array([[-5, 1]]), tok)
