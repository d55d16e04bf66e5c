"""Semantic subspaces: latents grouped by keyword categories, compared across two SAEs (Lan et al.
2024, "Sparse Autoencoders Reveal Universal Feature Spaces Across Large Language Models",
section 3 "Semantic Subspace Matching Experiments", section 4.3, Appendix G).

A latent belongs to a category when one of its top-k activating tokens IS one of the category's
keywords as a whole word (case-insensitive; "king" never matches the "king" inside "seeking").
For a pairing of A and B latents, a category's subspace is the set of pairs whose two latents are
both in the category and share at least one of its keywords in their top-k tokens (the paper keeps
"mappings that share at least one keyword"). Each subspace's paired decoder rows are scored
(SVCCA, RSA, ...) and tested two ways with :mod:`featgeom.stats.null`:

* Test 1 (``kind="shuffle"``): the pairs of the category shuffled among themselves. Does the
  pairing inside the category matter?
* Test 2 (``kind="subset"``, ``paired_pool=True``): random sets of the same number of pairs drawn
  from the whole pairing. Is this category more similar than a random same-size set of pairs?
  The mean of this null is the random-subspace baseline.

Both keep the given pairing fixed; when the pairing was chosen from activations these answer the
paper's questions, not whether the models share geometry (see featgeom.stats.null).

Caution, measured: SVCCA at its default variance 0.99 on n pairs with n <= the decoder width keeps
nearly all n - 1 item directions on both sides, so its value is close to 1 for ANY rows (24 random
pairs in 384 dims: 1.000; 100: 0.97) and has no power. Rows flag this; pass
``metric_kwargs={"svcca": {"k": K}}`` with a small K, or use "svcca_legacy" (the paper's k = 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.real.tokens import bare_text, checked_top_tokens, is_word_start, vocab_size
from featgeom.stats import null_test, null_tests
from featgeom.stats.kernels import metric_function, metric_label
from featgeom.stats.null import check_permutations

KEYWORDS_FILE = "keywords.json"
MIN_PAIRS_FLOOR = 3  # RSA needs 3 items (3 distances) for a correlation
DEFAULT_MIN_PAIRS = 5  # 5! = 120 distinct shufflings: Test 1 can reach p <= 0.05 from 4 pairs on


# ----------------------------------------------------------------------------------------------
# keyword lists


def load_keywords(path: str | Path | None = None, *, extend: bool = False) -> dict[str, tuple[str, ...]]:
    """Keyword lists {category: (keyword, ...)}, keywords lowercased, duplicates removed.

    path None: the shipped lists, data/keywords.json = the paper's Table 4 (Appendix G; eight
    categories: Time, Calendar, People/Roles, Nature, Emotions, MonthNames, Countries, Biology).
    path given: a JSON file holding {category: [keyword, ...]} (or {"categories": {...}, ...} as
    the shipped file). ``extend=False``: the file's categories alone; ``extend=True``: the shipped
    categories plus the file's, where a category of the same name gets the file's keywords
    appended. Keywords must be non-empty strings without whitespace (a keyword is matched against
    one token); ConfigError naming the file and the category otherwise.
    """
    if not isinstance(extend, bool):
        raise ConfigError(f"extend: must be True or False, got {extend!r}")
    shipped = _parse_keywords(_read_shipped(), "the shipped keywords.json")
    if path is None:
        return shipped
    user = _parse_keywords(_read_user(path), str(path))
    if not extend:
        return user
    merged = {cat: list(words) for cat, words in shipped.items()}
    for cat, words in user.items():
        merged.setdefault(cat, []).extend(words)
    return {cat: tuple(dict.fromkeys(words)) for cat, words in merged.items()}


def keywords_source() -> str:
    """The citation of the shipped keyword lists."""
    return str(_read_shipped()["source"])


def checked_keywords(keywords: object, name: str = "keywords") -> dict[str, tuple[str, ...]]:
    """``keywords`` (a mapping {category: [keyword, ...]}, or None for the shipped lists) validated
    and lowercased as :func:`load_keywords` does."""
    if keywords is None:
        return load_keywords()
    return _parse_keywords(keywords, name)


def _read_shipped() -> dict[str, Any]:
    text = resources.files("featgeom.real").joinpath("data", KEYWORDS_FILE).read_text("utf-8")
    return json.loads(text)


def _read_user(path: str | Path) -> object:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"path: keyword file {p} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"path: cannot read keyword file {p} as JSON ({err})") from None


def _parse_keywords(data: object, where: str) -> dict[str, tuple[str, ...]]:
    if isinstance(data, Mapping) and isinstance(data.get("categories"), Mapping):
        data = data["categories"]
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"keywords: {where} must map category names to keyword lists")
    out: dict[str, tuple[str, ...]] = {}
    for cat, words in data.items():
        if not isinstance(cat, str) or not cat.strip():
            raise ConfigError(f"keywords: {where} has a category name {cat!r}; need a non-empty string")
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence) or not words:
            raise ConfigError(f"keywords: category {cat!r} in {where} needs a non-empty list of strings")
        for w in words:
            if not isinstance(w, str) or not w or w != w.strip() or len(w.split()) != 1:
                raise ConfigError(
                    f"keywords: category {cat!r} in {where} has keyword {w!r}; keywords must be "
                    "non-empty strings without whitespace (each is matched against one token)"
                )
        out[cat] = tuple(dict.fromkeys(w.lower() for w in words))
    return out


# ----------------------------------------------------------------------------------------------
# category membership


def keyword_slots(
    top_tokens: object,
    tokenizer: Any,
    vocab: Sequence[str],
    *,
    next_token_ids: object = None,
) -> np.ndarray:
    """Index (N, k) into ``vocab`` (lowercased keywords) of the keyword each top token is, or -1.

    Top token t matches keyword w when bare_text(t).lower() == w (marker and whitespace stripped)
    and t starts a word (:func:`featgeom.real.tokens.is_word_start`): a WordPiece "##king" or a
    byte-level "king" without its leading space (the end of "seeking") never matches. With
    ``next_token_ids`` (N, k), the id at the position after each top position (-1 for none;
    :func:`featgeom.real.tokens.next_token_ids`), a match is also rejected when the next token
    continues the word ("king" + "##dom" = "kingdom"); without it, token ids alone cannot see that
    case.
    """
    top = checked_top_tokens(top_tokens, "top_tokens")
    index = {w: i for i, w in enumerate(vocab)}
    uniq, inverse = np.unique(top.ravel(), return_inverse=True)
    real = uniq[uniq >= 0]
    starts = is_word_start(tokenizer, real)
    table = np.full(uniq.size, -1, dtype=np.int64)
    table[uniq >= 0] = [
        index.get(t.lower(), -1) if s else -1 for t, s in zip(bare_text(tokenizer, real), starts)
    ]
    slots = table[inverse].reshape(top.shape)
    if next_token_ids is not None:
        nxt = checked_top_tokens(next_token_ids, "next_token_ids")
        if nxt.shape != top.shape:
            raise ShapeError(
                f"next_token_ids: shape {nxt.shape} differs from top_tokens shape {top.shape}"
            )
        continued = (nxt >= 0) & ~is_word_start(tokenizer, nxt)
        slots[continued] = -1
    return slots


def category_latents(
    top_tokens: object, tokenizer: Any, keywords: object = None, *, next_token_ids: object = None
) -> dict[str, np.ndarray]:
    """{category: bool (N,)}: latent j is in the category when one of its top-k tokens is one of
    the category's keywords as a whole token (rules of :func:`keyword_slots`).

    top_tokens: (N, k) token ids (-1 padded); keywords: {category: [keyword, ...]} or None (the
    shipped Table 4 lists). Membership is by token id: the token must be a word start, so a
    WordPiece "##king" (as in "bas" + "##king") or a byte-level "king" without its space (as in
    "Ġsee" + "king") never matches. Residual case: a word-start "king" followed by a continuation
    ("king" + "##dom", "Ġking" + "dom") is invisible to token ids alone; pass next_token_ids (N, k),
    the token after each top position (:func:`featgeom.real.tokens.next_token_ids` on the rows of
    :func:`featgeom.real.tokens.top_activating_positions`), to reject it.
    """
    kw = checked_keywords(keywords)
    vocab, members = _vocab(kw)
    slots = keyword_slots(top_tokens, tokenizer, vocab, next_token_ids=next_token_ids)
    return {cat: _in_category(slots, members[cat]).any(axis=1) for cat in kw}


def keyword_coverage(tokenizer: Any, keywords: object = None) -> dict[str, dict[str, list[str]]]:
    """{category: {"matchable": [...], "missing": [...]}}: which keywords some single word-start
    token of the vocabulary can match (case-insensitive, rules of :func:`keyword_slots`).

    A missing keyword (e.g. one the tokenizer splits into pieces; Appendix G notes that not all of
    Table 4 is single-token) can never put a latent into its category.
    """
    kw = checked_keywords(keywords)
    ids = np.arange(vocab_size(tokenizer))
    starts = is_word_start(tokenizer, ids)
    words = {t.lower() for t, s in zip(bare_text(tokenizer, ids), starts) if s}
    return {
        cat: {"matchable": [w for w in ws if w in words], "missing": [w for w in ws if w not in words]}
        for cat, ws in kw.items()
    }


def _vocab(kw: Mapping[str, tuple[str, ...]]) -> tuple[list[str], dict[str, np.ndarray]]:
    """Sorted union of keywords, and per category a bool (len(vocab),) membership mask."""
    vocab = sorted({w for words in kw.values() for w in words})
    index = {w: i for i, w in enumerate(vocab)}
    members = {}
    for cat, words in kw.items():
        mask = np.zeros(len(vocab), dtype=bool)
        mask[[index[w] for w in words]] = True
        members[cat] = mask
    return vocab, members


def _in_category(slots: np.ndarray, member: np.ndarray) -> np.ndarray:
    """Bool (shape of slots): the slot holds a keyword of the category."""
    return (slots >= 0) & member[np.maximum(slots, 0)]


# ----------------------------------------------------------------------------------------------
# semantic subspaces


def semantic_subspaces(
    pairing: Any,
    dec_a: object,
    dec_b: object,
    top_a: object,
    top_b: object,
    tokenizer: Any,
    keywords: object = None,
    *,
    n_perm: int = 1000,
    seed: int = 0,
    min_pairs: int = DEFAULT_MIN_PAIRS,
    metrics: Sequence[str] = ("svcca", "rsa"),
    metric_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    tokenizer_b: Any = None,
    next_a: object = None,
    next_b: object = None,
) -> list[dict[str, Any]]:
    """Per-category similarity of paired decoder rows, with Tests 1 and 2; one row per category.

    pairing: a featgeom.match.Pairing (idx_a, idx_b: (P,) latent ids of A and B). dec_a (N_a,
    d_a), dec_b (N_b, d_b): decoder rows; top_a (N_a, k), top_b (N_b, k): top-activating token
    ids (-1 padded) read with ``tokenizer`` (``tokenizer_b`` for B if different); next_a / next_b:
    optional next-token ids (see :func:`keyword_slots`). keywords: {category: [keyword]} or None.

    Category c keeps pair p = (i, j) when some top token of A latent i and some top token of B
    latent j are the same keyword of c. With x = dec_a[i over kept pairs], y = dec_b[j over kept
    pairs] and each metric m: observed m(x, y); Test 1 = null_tests(metrics, x, y) (shuffled pairs
    within c); Test 2 = null_test(m, x, y, kind="subset", pool_x=dec_a[pairing.idx_a],
    pool_y=dec_b[pairing.idx_b], paired_pool=True) (random same-size sets of pairs of the whole
    pairing); both with ``n_perm`` and ``seed`` (the same seed for every category).

    Row (JSON-ready): category, status ("ok" or "skipped"), reason (None or why), n_pairs,
    n_latents_a / n_latents_b (category members in each SAE), idx_a / idx_b (kept pairs),
    keywords (sorted keywords shared by kept pairs), keyword_counts_a / _b ({keyword: number of
    distinct kept latents with it in their top-k}, as the paper's Table 3), warnings (list of
    str), and metrics {m: {observed, test1_p, test1_null_mean, test1_null_std, test2_p,
    test2_null_mean (the random-subspace baseline), test2_null_std}} when status is "ok", or
    {m: {"skipped": reason}} for a metric that cannot score these rows. A category with fewer than
    ``min_pairs`` (>= 3) kept pairs is skipped with its n_pairs, never given a made-up number.
    """
    metrics = _checked_metrics(metrics)
    check_permutations(n_perm, seed, n_scores=len(metrics))
    if isinstance(min_pairs, bool) or not isinstance(min_pairs, (int, np.integer)) or min_pairs < MIN_PAIRS_FLOOR:
        raise ConfigError(f"min_pairs: must be an integer >= {MIN_PAIRS_FLOOR}, got {min_pairs!r}")
    kwargs = _checked_metric_kwargs(metric_kwargs, metrics)
    xa, xb = _decoder(dec_a, "dec_a"), _decoder(dec_b, "dec_b")
    ia, ib = _pairing_ids(pairing, xa.shape[0], xb.shape[0])
    kw = checked_keywords(keywords)
    vocab, members = _vocab(kw)
    slots_a = _side_slots(top_a, "top_a", xa.shape[0], tokenizer, vocab, next_a)
    slots_b = _side_slots(top_b, "top_b", xb.shape[0], tokenizer_b or tokenizer, vocab, next_b)
    context = _Context(xa, xb, ia, ib, n_perm, int(seed), int(min_pairs), metrics, kwargs)
    return [
        _category_row(cat, members[cat], slots_a, slots_b, vocab, context) for cat in kw
    ]


@dataclass
class _Context:
    """What every category row needs: decoders, the pairing, test options."""

    xa: np.ndarray
    xb: np.ndarray
    ia: np.ndarray
    ib: np.ndarray
    n_perm: int
    seed: int
    min_pairs: int
    metrics: list[str]
    kwargs: dict[str, dict[str, Any]]

    def __post_init__(self) -> None:
        self.pool_a, self.pool_b = self.xa[self.ia], self.xb[self.ib]


def _category_row(
    cat: str,
    member: np.ndarray,
    slots_a: np.ndarray,
    slots_b: np.ndarray,
    vocab: list[str],
    ctx: _Context,
) -> dict[str, Any]:
    in_a, in_b = _in_category(slots_a, member), _in_category(slots_b, member)
    sa = np.where(in_a[ctx.ia], slots_a[ctx.ia], -1)  # (P, k) category keywords of A's side
    sb = np.where(in_b[ctx.ib], slots_b[ctx.ib], -2)  # -2: never equal to A's -1
    shared = sa[:, :, None] == sb[:, None, :]  # (P, k, k)
    keep = shared.any(axis=(1, 2))
    ia, ib = ctx.ia[keep], ctx.ib[keep]
    shared_kw = sorted({vocab[s] for s in sa[keep][shared[keep].any(axis=2)]})
    row: dict[str, Any] = {
        "category": cat,
        "status": "ok",
        "reason": None,
        "n_pairs": int(keep.sum()),
        "n_latents_a": int(in_a.any(axis=1).sum()),
        "n_latents_b": int(in_b.any(axis=1).sum()),
        "idx_a": ia.tolist(),
        "idx_b": ib.tolist(),
        "keywords": shared_kw,
        "keyword_counts_a": _keyword_counts(np.unique(ia), slots_a, in_a, vocab),
        "keyword_counts_b": _keyword_counts(np.unique(ib), slots_b, in_b, vocab),
        "warnings": [],
        "metrics": {},
        "n_perm": ctx.n_perm,
        "seed": ctx.seed,
    }
    if row["n_pairs"] < ctx.min_pairs:
        row["status"] = "skipped"
        row["reason"] = f"{row['n_pairs']} pairs, fewer than min_pairs={ctx.min_pairs}"
        return row
    row["warnings"] = _warnings(row["n_pairs"], ctx)
    row["metrics"] = _scores(ctx.xa[ia], ctx.xb[ib], ctx)
    return row


def _keyword_counts(
    latents: np.ndarray, slots: np.ndarray, in_cat: np.ndarray, vocab: list[str]
) -> dict[str, int]:
    """{keyword: number of the given latents with it among their top-k}, each latent once."""
    counts: dict[str, int] = {}
    for j in latents:
        for s in set(slots[j][in_cat[j]].tolist()):
            counts[vocab[s]] = counts.get(vocab[s], 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _scores(x: np.ndarray, y: np.ndarray, ctx: _Context) -> dict[str, dict[str, Any]]:
    """Observed score, Test 1 and Test 2 of each metric; {"skipped": reason} where it cannot score."""
    out: dict[str, dict[str, Any]] = {}
    usable = []
    for m in ctx.metrics:  # a metric that cannot score these rows is skipped alone
        try:
            metric_function(m, ctx.kwargs.get(metric_label(m), {}))(x, y)
            usable.append(m)
        except (DataError, ShapeError) as err:
            out[metric_label(m)] = {"skipped": str(err)}
    if usable:
        used = {metric_label(m) for m in usable}
        test1 = null_tests(
            usable, x, y, n_perm=ctx.n_perm, seed=ctx.seed,
            metric_kwargs={k: v for k, v in ctx.kwargs.items() if k in used},
        )
    for m in usable:
        label = metric_label(m)
        t2 = null_test(
            m, x, y, kind="subset", n_perm=ctx.n_perm, seed=ctx.seed, pool_x=ctx.pool_a,
            pool_y=ctx.pool_b, paired_pool=True, metric_kwargs=ctx.kwargs.get(label),
        )
        t1 = test1[label]
        out[label] = {
            "observed": t1.observed,
            "test1_p": t1.p_value,
            "test1_null_mean": t1.null_mean,
            "test1_null_std": t1.null_std,
            "test2_p": t2.p_value,
            "test2_null_mean": t2.null_mean,
            "test2_null_std": t2.null_std,
        }
    return {metric_label(m): out[metric_label(m)] for m in ctx.metrics}


def _warnings(n_pairs: int, ctx: _Context) -> list[str]:
    width = min(ctx.xa.shape[1], ctx.xb.shape[1])
    svcca_k = ctx.kwargs.get("svcca", {}).get("k")
    if "svcca" in ctx.metrics and svcca_k is None and n_pairs <= width:
        message = (
            f"svcca: {n_pairs} pairs <= decoder width {width}: at variance 0.99 SVCCA keeps nearly "
            "every item direction and is close to 1 for any rows (no power); use "
            "metric_kwargs={'svcca': {'k': K}} with small K, or 'svcca_legacy'"
        )
        return [message]
    return []


def _side_slots(
    top: object, name: str, n_latents: int, tokenizer: Any, vocab: list[str], nxt: object
) -> np.ndarray:
    arr = checked_top_tokens(top, name)
    if arr.shape[0] != n_latents:
        raise ShapeError(
            f"{name}: has {arr.shape[0]} rows but its decoder has {n_latents} latents"
        )
    return keyword_slots(arr, tokenizer, vocab, next_token_ids=nxt)


def _decoder(dec: object, name: str) -> np.ndarray:
    arr = np.asarray(dec, dtype=np.float64) if not hasattr(dec, "detach") else (
        dec.detach().cpu().numpy().astype(np.float64)
    )
    if arr.ndim != 2:
        raise ShapeError(f"{name}: expected a 2-D (n_latents, d) matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: contains NaN or inf")
    return arr


def _pairing_ids(pairing: Any, n_a: int, n_b: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        ia, ib = np.asarray(pairing.idx_a), np.asarray(pairing.idx_b)
    except AttributeError:
        raise ConfigError(
            f"pairing: expected a featgeom.match.Pairing (idx_a, idx_b), got {type(pairing).__name__}"
        ) from None
    if ia.ndim != 1 or ia.shape != ib.shape:
        raise ShapeError(f"pairing: idx_a {ia.shape} and idx_b {ib.shape} must be equal 1-D")
    for ids, n, side in ((ia, n_a, "a"), (ib, n_b, "b")):
        if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= n):
            raise ShapeError(f"pairing: idx_{side} must be latent ids in [0, {n}) of dec_{side}")
    return ia.astype(np.int64), ib.astype(np.int64)


def _checked_metrics(metrics: object) -> list[str]:
    items = [metrics] if isinstance(metrics, str) else list(metrics)  # type: ignore[call-overload]
    labels = [metric_label(m) for m in items]
    if not labels or len(set(labels)) < len(labels):
        raise ConfigError(f"metrics: need distinct metrics, got {labels}")
    return items


def _checked_metric_kwargs(kwargs: object, metrics: list[str]) -> dict[str, dict[str, Any]]:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise ConfigError(f"metric_kwargs: must map metric names to keyword dicts, got {kwargs!r}")
    labels = [metric_label(m) for m in metrics]
    unknown = sorted(set(kwargs) - set(labels))
    if unknown:
        raise ConfigError(f"metric_kwargs: for metrics not listed: {unknown}")
    return {k: dict(v) for k, v in kwargs.items()}
