"""Top-activating tokens of SAE latents, and the readable form of single tokens.

A latent's top tokens are the token ids at the k positions where it activates most: the
"top 5 samples' tokens" of Lan et al. 2024 ("Sparse Autoencoders Reveal Universal Feature Spaces
Across Large Language Models", section 3), from which non-concept latents are filtered
(:mod:`featgeom.real.filters`) and semantic subspaces are built (:mod:`featgeom.real.semantic`).

Single tokens are read per tokenizer family, detected from the tokenizer's own pipeline
(``tokenizer.backend_tokenizer``, never guessed from the vocabulary):

* ``wordpiece`` (BERT): a continuation piece carries the model's prefix ("##ing"); every other
  token starts a word.
* ``bytelevel`` (GPT-2, Pythia, SmolLM): tokens are byte strings in the GPT-2 byte-to-unicode
  alphabet; "Ġword" reads " word", "Ċ" reads "\\n". A token starts a word when its text starts
  with whitespace or with a character that is not a letter or digit (punctuation, symbols: the
  pre-tokenizer splits those off); a letter/digit-initial token without the space is a
  continuation ("seeking" -> "Ġsee" + "king").
* ``sentencepiece`` (Llama, Gemma; Metaspace or "▁"-replacement pipelines): "▁word" reads
  " word"; byte-fallback tokens "<0x0A>" read as their byte. Word starts as for bytelevel, with
  "▁" as the space.

Special tokens (CLS, SEP, BOS, EOS, PAD, ...) read as their own text and count as word starts.
Token ids alone cannot see the residual cases of a word-start token at the very beginning of a
text without a leading space (bytelevel / sentencepiece read it as a continuation), or of a
word-start token followed by a continuation piece ("king" + "##dom"); see
:func:`next_token_ids` for the latter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError, ShapeError

FAMILIES = ("wordpiece", "bytelevel", "sentencepiece")
SPIECE_SPACE = "\u2581"  # "▁", SentencePiece's visible space
_DENSE_CHUNK_BYTES = 256 * 2**20  # scratch budget of one column chunk of a dense latents matrix


# ----------------------------------------------------------------------------------------------
# top-activating positions and tokens


def top_activating_positions(latents: object, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Rows and values of each latent's k highest activations.

    latents: (n_tokens, N), a scipy sparse matrix (any format; CSR as SAEs encode) or a dense
    NumPy array. A latent *fires* at a position when its activation there is > 0; only firing
    positions count. Per latent (column) j, positions are ranked by activation descending, ties by
    position ascending (deterministic), and the first min(k, #firing) kept.

    Returns rows (N, k) int64 (row indices into ``latents``; -1 where latent j fires on fewer
    than k positions) and values (N, k) float64 (the activations there; 0.0 in padded slots).
    Fully vectorised: two stable sorts over the firing entries (dense input is reduced to its top
    candidates per column first, in column chunks). ConfigError for bad k, ShapeError for a
    non-2-D input, DataError for NaN activations.
    """
    k = _checked_k(k)
    rows, cols, vals, n_latents = _firing_entries(latents, k)
    # entries arrive with rows ascending; two stable sorts = order by (col, -value, row)
    order = np.argsort(-vals, kind="stable")
    order = order[np.argsort(cols[order], kind="stable")]
    rows, cols, vals = rows[order], cols[order], vals[order]
    starts = np.searchsorted(cols, np.arange(n_latents))
    rank = np.arange(cols.size) - starts[cols]
    keep = rank < k
    out_rows = np.full((n_latents, k), -1, dtype=np.int64)
    out_vals = np.zeros((n_latents, k), dtype=np.float64)
    out_rows[cols[keep], rank[keep]] = rows[keep]
    out_vals[cols[keep], rank[keep]] = vals[keep]
    return out_rows, out_vals


def top_activating_tokens(latents: object, token_ids: object, k: int = 5) -> np.ndarray:
    """Token ids (N, k) int64 at each latent's k highest-activation positions, -1 padded.

    latents: (n_tokens, N) sparse or dense activations; token_ids: (n_tokens,) the token at each
    row. Entry [j, r] = token_ids[rows[j, r]] with rows from :func:`top_activating_positions`
    (activation descending, ties by position); -1 where latent j fires (> 0) on fewer than r + 1
    positions. ShapeError when token_ids does not have one entry per row of latents.
    """
    rows, _ = top_activating_positions(latents, k)
    ids = _checked_token_ids(token_ids, _n_rows(latents))
    out = np.full(rows.shape, -1, dtype=np.int64)
    hit = rows >= 0
    out[hit] = ids[rows[hit]]
    return out


def next_token_ids(
    rows: object, token_ids: object, positions: object = None
) -> np.ndarray:
    """Token id (same shape as rows) that follows each top position in its window, -1 if none.

    rows: row indices (any shape, -1 = no position) into token_ids (n_tokens,). Row r + 1 follows
    row r when it is the next offset of the same window: positions (n_tokens, 2) int (window,
    offset), as :class:`featgeom.real.activations.ActivationSet` stores them for its kept
    (unmasked) positions; without positions, consecutive rows are one token stream. A masked
    (special / padding) next position gives -1, which is never a continuation. Pass the result as
    ``next_token_ids`` to :func:`featgeom.real.semantic.category_latents` to reject "king" + "##dom".
    """
    r = np.asarray(rows)
    if not np.issubdtype(r.dtype, np.integer):
        raise ConfigError(f"rows: must be integer row indices, got dtype {r.dtype}")
    ids = _checked_token_ids(token_ids, None)
    n = ids.size
    if r.size and (r.max() >= n or r.min() < -1):
        raise ShapeError(f"rows: indices must lie in [-1, {n - 1}] for {n} token ids")
    nxt = r + 1
    ok = (r >= 0) & (nxt < n)
    if positions is not None:
        pos = np.asarray(positions)
        if pos.shape != (n, 2) or not np.issubdtype(pos.dtype, np.integer):
            raise ShapeError(f"positions: expected integer shape ({n}, 2), got {pos.shape}")
        safe_r, safe_n = np.where(ok, r, 0), np.where(ok, nxt, 0)
        same_window = pos[safe_n, 0] == pos[safe_r, 0]
        adjacent = pos[safe_n, 1] == pos[safe_r, 1] + 1
        ok &= same_window & adjacent
    out = np.full(r.shape, -1, dtype=np.int64)
    out[ok] = ids[nxt[ok]]
    return out


def _checked_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k: must be a positive integer, got {k!r}")
    return int(k)


def _n_rows(latents: object) -> int:
    shape = getattr(latents, "shape", None)
    if shape is None or len(shape) != 2:
        raise ShapeError(f"latents: expected a 2-D (n_tokens, N) matrix, got shape {shape}")
    return int(shape[0])


def checked_top_tokens(top_tokens: object, name: str = "top_tokens") -> np.ndarray:
    """Top-token ids (N, k) as int64, -1 for "no position" (:func:`top_activating_tokens`'s
    output, or next-token ids); ShapeError unless 2-D, ConfigError unless integers >= -1."""
    arr = np.asarray(top_tokens)
    if arr.ndim != 2:
        raise ShapeError(f"{name}: expected a 2-D (N, k) array, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"{name}: must be integer token ids, got dtype {arr.dtype}")
    if arr.size and arr.min() < -1:
        raise ConfigError(f"{name}: ids must be >= 0 (or -1 for no position), got {arr.min()}")
    return arr.astype(np.int64, copy=False)


def _checked_token_ids(token_ids: object, n_tokens: int | None) -> np.ndarray:
    ids = np.asarray(token_ids)
    if ids.ndim != 1:
        raise ShapeError(f"token_ids: expected a 1-D array, got shape {ids.shape}")
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise ConfigError(f"token_ids: must be integers, got dtype {ids.dtype}")
    if n_tokens is not None and ids.size != n_tokens:
        raise ShapeError(
            f"token_ids: has {ids.size} entries but latents has {n_tokens} rows (one per token)"
        )
    return ids.astype(np.int64, copy=False)


def _firing_entries(
    latents: object, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(rows, cols, values, N) of the firing (> 0) entries that can be among a column's top k.

    Entries come in row-major order (rows non-decreasing), which the stable sorts rely on.
    """
    if sp.issparse(latents):
        if len(latents.shape) != 2:
            raise ShapeError(f"latents: expected a 2-D (n_tokens, N) matrix, got {latents.shape}")
        csr = sp.csr_matrix(latents, copy=True)
        csr.sum_duplicates()
        coo = csr.tocoo()
        vals = np.asarray(coo.data, dtype=np.float64)
        _check_finite(vals)
        fire = vals > 0
        return (coo.row[fire].astype(np.int64), coo.col[fire].astype(np.int64), vals[fire],
                int(latents.shape[1]))
    arr = np.asarray(latents)
    if arr.ndim != 2:
        raise ShapeError(f"latents: expected a 2-D (n_tokens, N) matrix, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ConfigError(f"latents: must be real numbers, got dtype {arr.dtype}")
    return (*_dense_candidates(arr, k), int(arr.shape[1]))


def _dense_candidates(arr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries of dense ``arr`` that are > 0 and >= their column's k-th largest value.

    Ties at the k-th value are all kept (the lexsort then breaks them by position), so the
    selection equals a full sort's.
    """
    n, n_cols = arr.shape
    width = max(1, _DENSE_CHUNK_BYTES // max(1, 8 * n))  # partition copies the block
    parts = []
    for start in range(0, n_cols, width):
        block = arr[:, start : start + width]
        if not np.issubdtype(block.dtype, np.floating):
            block = block.astype(np.float64)
        _check_finite(block)
        if n > k:
            kth = np.partition(block, n - k, axis=0)[n - k]
            cand = (block > 0) & (block >= kth[None, :])
        else:
            cand = block > 0
        r, c = np.nonzero(cand)
        parts.append((r.astype(np.int64), c.astype(np.int64) + start, block[r, c].astype(np.float64)))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    return tuple(np.concatenate(p) for p in zip(*parts))  # type: ignore[return-value]


def _check_finite(vals: np.ndarray) -> None:
    if np.isnan(vals).any():
        raise DataError("latents: contains NaN activations")


# ----------------------------------------------------------------------------------------------
# tokenizer families and single-token text


@dataclass(frozen=True)
class TokenizerInfo:
    """How to read a tokenizer's tokens: family (one of FAMILIES) and its marker.

    marker: the continuation prefix for wordpiece ("##"), the visible space for sentencepiece
    ("▁" or the Metaspace replacement), "Ġ" (the space byte's glyph) for bytelevel.
    """

    family: str
    marker: str


def tokenizer_info(tokenizer: Any) -> TokenizerInfo:
    """Family and marker of a transformers tokenizer or a ``tokenizers.Tokenizer``.

    Read from the backend pipeline's JSON: model type WordPiece -> wordpiece (its
    continuing_subword_prefix); a ByteLevel pre-tokenizer or decoder -> bytelevel; a Metaspace
    component or a Replace(" " -> "▁") normalizer/decoder -> sentencepiece; a slow tokenizer with
    an ``sp_model`` -> sentencepiece. Anything else: ConfigError naming ``tokenizer`` (no guess).
    """
    backend = _backend(tokenizer)
    if backend is None:
        if getattr(tokenizer, "sp_model", None) is not None:
            return TokenizerInfo("sentencepiece", SPIECE_SPACE)
        raise ConfigError(
            f"tokenizer: cannot classify {type(tokenizer).__name__} (no fast backend pipeline "
            "and no SentencePiece model); expected a WordPiece, byte-level BPE or SentencePiece "
            "tokenizer"
        )
    model_type = type(backend.model).__name__
    if model_type == "WordPiece":
        return TokenizerInfo("wordpiece", backend.model.continuing_subword_prefix or "##")
    parts = [_state(getattr(backend, key, None)) for key in ("normalizer", "pre_tokenizer", "decoder")]
    return _info_of_components(model_type, tuple(parts))


def _state(component: object) -> str:
    """JSON text of a pipeline component (small: no vocabulary), "null" for none."""
    if component is None:
        return "null"
    state = component.__getstate__()
    return state.decode("utf-8") if isinstance(state, bytes) else json.dumps(state)


@lru_cache(maxsize=64)
def _info_of_components(model_type: str, parts: tuple[str, ...]) -> TokenizerInfo:
    found = [c for part in parts for c in _components(json.loads(part))]
    if any(c.get("type") == "ByteLevel" for c in found):
        return TokenizerInfo("bytelevel", _BYTE_TO_CHAR[ord(" ")])
    for c in found:
        if c.get("type") == "Metaspace":
            return TokenizerInfo("sentencepiece", c.get("replacement") or SPIECE_SPACE)
        if c.get("type") == "Replace" and SPIECE_SPACE in (c.get("content"), _pattern(c)):
            return TokenizerInfo("sentencepiece", SPIECE_SPACE)
    raise ConfigError(
        f"tokenizer: cannot classify a {model_type} model without a ByteLevel or "
        "Metaspace component; expected a WordPiece, byte-level BPE or SentencePiece tokenizer"
    )


def _components(part: object) -> list[dict]:
    """A pipeline component and, for Sequence components, all nested ones."""
    if not isinstance(part, dict):
        return []
    out = [part]
    for key in ("normalizers", "pretokenizers", "decoders", "processors"):
        for sub in part.get(key) or []:
            out.extend(_components(sub))
    return out


def _pattern(component: dict) -> object:
    pattern = component.get("pattern")
    return pattern.get("String") if isinstance(pattern, dict) else pattern


def _backend(tokenizer: Any) -> Any:
    """The ``tokenizers.Tokenizer`` behind ``tokenizer`` (itself if it is one), or None."""
    if hasattr(tokenizer, "id_to_token") and hasattr(tokenizer, "to_str"):
        return tokenizer
    return getattr(tokenizer, "backend_tokenizer", None)


def vocab_size(tokenizer: Any) -> int:
    """Number of token ids, added tokens included."""
    if hasattr(tokenizer, "get_vocab_size"):
        return int(tokenizer.get_vocab_size(with_added_tokens=True))
    try:
        return len(tokenizer)
    except TypeError:
        raise ConfigError(
            f"tokenizer: {type(tokenizer).__name__} has no vocabulary size"
        ) from None


def raw_tokens(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Vocabulary strings of token ids (DataError for an id outside the vocabulary)."""
    arr = np.asarray(ids, dtype=np.int64).ravel()
    size = vocab_size(tokenizer)
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        bad = int(arr[(arr < 0) | (arr >= size)][0])
        raise DataError(f"ids: token id {bad} outside the vocabulary (size {size})")
    backend = _backend(tokenizer)
    if backend is tokenizer:
        toks = [tokenizer.id_to_token(int(i)) for i in arr]
    else:
        toks = list(tokenizer.convert_ids_to_tokens([int(i) for i in arr]))
    for i, t in zip(arr, toks):
        if t is None:
            raise DataError(f"ids: token id {int(i)} has no token in the vocabulary")
    return toks


def special_ids(tokenizer: Any) -> frozenset[int]:
    """Ids of the tokenizer's structural special tokens: pad, BOS, EOS, CLS, SEP.

    For a raw ``tokenizers.Tokenizer``: its added tokens marked special. UNK and MASK are not
    included (they can stand for text).
    """
    if _backend(tokenizer) is tokenizer:
        added = tokenizer.get_added_tokens_decoder()
        return frozenset(int(i) for i, tok in added.items() if getattr(tok, "special", False))
    out = set()
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "cls_token_id", "sep_token_id"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            out.add(int(value))
    return frozenset(out)


def token_text(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Readable text of each single token id (1-D sequence), as described in the module doc.

    wordpiece: the vocabulary string ("##ing" keeps its continuation mark); bytelevel: the UTF-8
    decoding of the token's bytes (invalid / partial sequences as U+FFFD), so "Ġword" -> " word";
    sentencepiece: "▁" -> " ", "<0xNN>" -> that byte. Special tokens: their own text.
    """
    info = tokenizer_info(tokenizer)
    arr = _ids_1d(ids)
    specials = special_ids(tokenizer)
    toks = raw_tokens(tokenizer, arr)
    return [t if int(i) in specials else _readable(t, info) for i, t in zip(arr, toks)]


def is_word_start(tokenizer: Any, ids: object) -> np.ndarray:
    """Bool array (shape of ids) saying whether each token begins a word; -1 entries -> False.

    wordpiece: does not start with the continuation prefix; bytelevel / sentencepiece: its
    readable text starts with whitespace or a character that is not a letter or digit, or it is a
    special token. (Module doc: the cases token ids cannot see.)
    """
    arr = np.asarray(ids)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"ids: must be integer token ids, got dtype {arr.dtype}")
    info = tokenizer_info(tokenizer)
    uniq, inverse = np.unique(arr.astype(np.int64).ravel(), return_inverse=True)
    real = uniq[uniq >= 0]
    specials = special_ids(tokenizer)
    toks = raw_tokens(tokenizer, real)
    starts = [int(i) in specials or _starts_word(t, info) for i, t in zip(real, toks)]
    table = np.zeros(uniq.size, dtype=bool)
    table[uniq >= 0] = starts
    return table[inverse].reshape(arr.shape)


def bare_text(tokenizer: Any, ids: Sequence[int] | np.ndarray) -> list[str]:
    """Token text without its word-start / continuation marker and surrounding whitespace.

    " word" -> "word", "##ing" -> "ing", " ." -> ".", "\\n" and " " -> "". Special tokens keep
    their text. Used to compare tokens with keyword lists.
    """
    info = tokenizer_info(tokenizer)
    arr = _ids_1d(ids)
    specials = special_ids(tokenizer)
    texts = token_text(tokenizer, arr)
    out = []
    for i, t in zip(arr, texts):
        if int(i) not in specials and info.family == "wordpiece" and t.startswith(info.marker):
            t = t[len(info.marker) :]
        out.append(t.strip())
    return out


def _ids_1d(ids: Sequence[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ShapeError(f"ids: expected a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ConfigError(f"ids: must be integer token ids, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _readable(token: str, info: TokenizerInfo) -> str:
    if info.family == "bytelevel":
        data = bytearray()
        for ch in token:  # a char outside the byte alphabet (an added token's text) is itself
            b = _CHAR_TO_BYTE.get(ch)
            data.extend(ch.encode("utf-8") if b is None else (b,))
        return data.decode("utf-8", errors="replace")
    if info.family == "sentencepiece":
        if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
            try:
                return bytes([int(token[3:5], 16)]).decode("utf-8", errors="replace")
            except ValueError:
                return token
        return token.replace(info.marker, " ")
    return token


def _starts_word(token: str, info: TokenizerInfo) -> bool:
    if info.family == "wordpiece":
        return not token.startswith(info.marker)
    text = _readable(token, info)
    return not text or not text[0].isalnum()


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character table (Radford et al. 2019, openai/gpt-2 encoder).

    Printable Latin-1 bytes ("!".."~", "¡".."¬", "®".."ÿ") map to themselves; the remaining 68
    bytes map, in byte order, to chr(256), chr(257), ... (so space 0x20 -> "Ġ", 0x0A -> "Ċ").
    """
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


_BYTE_TO_CHAR = _byte_alphabet()
_CHAR_TO_BYTE = {ch: b for b, ch in _BYTE_TO_CHAR.items()}
