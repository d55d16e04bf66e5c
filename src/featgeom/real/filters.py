"""Non-concept latents: those whose top-activating tokens include newlines, spaces, punctuation or
structural special tokens (Lan et al. 2024, "Sparse Autoencoders Reveal Universal Feature Spaces
Across Large Language Models", section 3 "Filter by Top Tokens" and Appendix F).

The paper drops a latent when at least one of its top-5 tokens is a non-concept keyword. Its
released code never applied the keyword filter (a for/else slip made it a no-op); here the rule is
applied, and tests plant non-concept latents and check that exactly those are removed. Latents
that never fire (top-token rows of -1 only) are neither concept nor non-concept: they are reported
by :func:`dead_latents`, and :func:`concept_keep` drops them as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from featgeom.errors import ConfigError
from featgeom.real.tokens import bare_text, checked_top_tokens, special_ids

# Lan et al. 2024, Appendix F, the "non-concept" keywords, verbatim: "\\n" (the two characters
# backslash and n, as escaped newlines appear in text), "\n", the empty string, a space, ".", ",",
# "!", "?", "-", plus the tokenizer's padding token (<bos>, <|endoftext|>, ...; here every
# structural special token: pad, BOS, EOS, CLS, SEP, see featgeom.real.tokens.special_ids).
NON_CONCEPT_TOKENS: tuple[str, ...] = ("\\n", "\n", "", " ", ".", ",", "!", "?", "-")


def non_concept_texts(extra: Iterable[str] = ()) -> frozenset[str]:
    """The non-concept token texts as compared: NON_CONCEPT_TOKENS and ``extra``, stripped.

    Tokens are compared after removing their word-start / continuation marker and surrounding
    whitespace, so "\\n" and " " both become "" (whitespace-only tokens are non-concept) and
    " ." counts as ".".
    """
    return frozenset(t.strip() for t in (*NON_CONCEPT_TOKENS, *extra))


def non_concept_token_mask(
    ids: np.ndarray, tokenizer: Any, extra: Iterable[str | int] = ()
) -> np.ndarray:
    """Bool (shape of ids): token id is non-concept; -1 entries (no position) -> False.

    A token is non-concept when it is one of the tokenizer's structural special tokens (pad, BOS,
    EOS, CLS, SEP), an id listed in ``extra``, or its bare text (:func:`bare_text`) is in
    :func:`non_concept_texts` of the strings in ``extra``.
    """
    extra_texts, extra_ids = _split_extra(extra)
    texts = non_concept_texts(extra_texts)
    flat = np.asarray(ids, dtype=np.int64).ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    real = uniq[uniq >= 0]
    bad = special_ids(tokenizer) | extra_ids
    table = np.zeros(uniq.size, dtype=bool)
    table[uniq >= 0] = [
        int(i) in bad or t in texts for i, t in zip(real, bare_text(tokenizer, real))
    ]
    return table[inverse].reshape(np.shape(ids))


def dead_latents(top_tokens: object) -> np.ndarray:
    """Bool (N,): the latent fired nowhere (its top-token row is all -1)."""
    return (checked_top_tokens(top_tokens) < 0).all(axis=1)


def non_concept_latents(
    top_tokens: object, tokenizer: Any, extra: Iterable[str | int] = ()
) -> np.ndarray:
    """Bool (N,): True when ANY of latent j's top-k tokens is non-concept (paper's rule, applied).

    top_tokens: (N, k) int token ids from :func:`featgeom.real.tokens.top_activating_tokens`, -1
    padded. extra: more non-concept token texts (compared stripped, e.g. ":", "(") or token ids.
    Dead latents (all -1) are False here: see :func:`dead_latents` and :func:`concept_keep`.
    """
    top = checked_top_tokens(top_tokens)
    return non_concept_token_mask(top, tokenizer, extra).any(axis=1)


def concept_keep(
    top_tokens: object, tokenizer: Any, extra: Iterable[str | int] = ()
) -> np.ndarray:
    """Bool (N,) keep mask for pairing (keep_a / keep_b): alive and not non-concept."""
    top = checked_top_tokens(top_tokens)
    return ~dead_latents(top) & ~non_concept_latents(top, tokenizer, extra)


def _split_extra(extra: Iterable[str | int]) -> tuple[list[str], frozenset[int]]:
    if isinstance(extra, (str, bytes)):
        raise ConfigError("extra: must be a collection of token texts or ids, not one string")
    texts, ids = [], set()
    for item in extra:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool) and item >= 0:
            ids.add(int(item))
        else:
            raise ConfigError(f"extra: entries must be token texts or ids >= 0, got {item!r}")
    return texts, frozenset(ids)
