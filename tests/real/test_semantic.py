"""featgeom.real.semantic: keyword lists, whole-token category membership, semantic subspaces with
Tests 1 and 2 (planted signal, planted independence, calibration)."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import scipy.sparse as sp

from featgeom.errors import ConfigError, ShapeError
from featgeom.match.pairing import Pairing
from featgeom.real.semantic import (
    category_latents,
    keyword_coverage,
    keyword_slots,
    keywords_source,
    load_keywords,
    semantic_subspaces,
)
from featgeom.real.tokens import (
    next_token_ids,
    top_activating_positions,
    top_activating_tokens,
)
from tests.real.test_tokens import byte_bpe_tokenizer, ids_of, minilm_tokenizer

TABLE4_SIZES = {"Time": 83, "Calendar": 35, "People/Roles": 27, "Nature": 46, "Emotions": 49,
                "MonthNames": 12, "Countries": 19, "Biology": 29}


# ---------------------------------------------------------------------------------------------
# keyword lists


def test_shipped_keywords_are_table_4():
    kw = load_keywords()
    assert {c: len(w) for c, w in kw.items()} == TABLE4_SIZES
    assert kw["People/Roles"][:3] == ("man", "girl", "boy") and "king" in kw["People/Roles"]
    assert kw["MonthNames"][0] == "january" and "usa" in kw["Countries"] and "dna" in kw["Biology"]
    assert kw["Time"][-1] == "timeframe" and kw["Emotions"][-1] == "kind"
    assert set(kw["Calendar"]) <= set(kw["Time"])  # "Calendar is a subset of Time" (Appendix G)
    assert "Lan et al." in keywords_source() and "Table 4" in keywords_source()


def test_user_keywords_replace_or_extend(tmp_path):
    path = tmp_path / "kw.json"
    path.write_text(json.dumps({"Royal": ["King", "queen", "king"], "Time": ["fortnight"]}))
    own = load_keywords(path)
    assert own == {"Royal": ("king", "queen"), "Time": ("fortnight",)}
    merged = load_keywords(path, extend=True)
    assert set(merged) == set(TABLE4_SIZES) | {"Royal"}
    assert merged["Time"][-1] == "fortnight" and len(merged["Time"]) == 84
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"source": "me", "categories": {"A": ["x"]}}))
    assert load_keywords(wrapped) == {"A": ("x",)}


@pytest.mark.parametrize("content, match", [
    ({"Royal": []}, "'Royal'"),
    ({"Royal": "king"}, "'Royal'"),
    ({"Royal": ["king", 3]}, "'Royal'"),
    ({"Royal": ["new york"]}, "'Royal'.*whitespace"),
    ({"Royal": [""]}, "'Royal'"),
    ([1, 2], "must map"),
    ({}, "must map"),
])
def test_bad_keyword_files(tmp_path, content, match):
    path = tmp_path / "kw.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=match):
        load_keywords(path)


def test_missing_or_broken_keyword_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_keywords(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="as JSON"):
        load_keywords(bad)
    with pytest.raises(ConfigError, match="extend"):
        load_keywords(extend="yes")


# ---------------------------------------------------------------------------------------------
# whole-token membership: "king" never matches the end of "seeking"


ROYAL = {"Royal": ["king", "queen"], "Months": ["January"]}


def latents_on(token_ids: np.ndarray, fire_at: list[list[int]]) -> sp.csr_matrix:
    """Activations (n_tokens, len(fire_at)): latent j fires at positions fire_at[j], decreasing."""
    acts = np.zeros((token_ids.size, len(fire_at)), dtype=np.float32)
    for j, positions in enumerate(fire_at):
        acts[positions, j] = np.linspace(2.0, 1.0, len(positions))
    return sp.csr_matrix(acts)


def test_wordpiece_king_inside_a_word_never_matches():
    tok = minilm_tokenizer()
    text = "basking in the sun , the king and the queen in january . kingpin"
    token_ids = np.array(ids_of(tok, text))
    toks = tok.convert_ids_to_tokens(token_ids.tolist())
    assert toks[:2] == ["bas", "##king"] and toks[-2:] == ["king", "##pin"]
    pos = {t: i for i, t in reversed(list(enumerate(toks)))}  # first occurrence
    acts = latents_on(token_ids, [
        [1],                        # 0: "##king" of basking -> no category
        [pos["king"]],              # 1: the king -> Royal
        [pos["sun"], pos["queen"]],  # 2: queen among its top tokens -> Royal
        [pos["january"]],           # 3: case-insensitive "January"
        [len(toks) - 2],            # 4: "king" of "kingpin" (followed by ##pin)
        [0, 2, 3],                  # 5: bas, in, the -> nothing
    ])
    top = top_activating_tokens(acts, token_ids, k=5)
    cats = category_latents(top, tok, ROYAL)
    np.testing.assert_array_equal(cats["Royal"], [0, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(cats["Months"], [0, 0, 0, 1, 0, 0])
    rows, _ = top_activating_positions(acts, k=5)
    nxt = next_token_ids(rows, token_ids)
    cats = category_latents(top, tok, ROYAL, next_token_ids=nxt)
    np.testing.assert_array_equal(cats["Royal"], [0, 1, 1, 0, 0, 0])  # kingpin now rejected


def test_byte_level_king_inside_seeking_never_matches():
    tok = byte_bpe_tokenizer()
    token_ids = np.array(ids_of(tok, " seeking the king kingdom"))
    assert tok.convert_ids_to_tokens(token_ids.tolist()) == [
        "Ġsee", "king", "Ġthe", "Ġking", "Ġking", "dom"]
    acts = latents_on(token_ids, [[1], [3], [4], [0, 2]])
    top = top_activating_tokens(acts, token_ids, k=5)
    np.testing.assert_array_equal(category_latents(top, tok, ROYAL)["Royal"], [0, 1, 1, 0])
    rows, _ = top_activating_positions(acts, k=5)
    nxt = next_token_ids(rows, token_ids)
    cats = category_latents(top, tok, ROYAL, next_token_ids=nxt)
    np.testing.assert_array_equal(cats["Royal"], [0, 1, 0, 0])  # "Ġking" + "dom" rejected


def test_keyword_slots_shapes_and_errors():
    tok = minilm_tokenizer()
    top = np.array([[ids_of(tok, "king")[0], -1]])
    vocab = ["king", "queen"]
    np.testing.assert_array_equal(keyword_slots(top, tok, vocab), [[0, -1]])
    with pytest.raises(ShapeError, match="next_token_ids"):
        keyword_slots(top, tok, vocab, next_token_ids=np.array([[1]]))
    with pytest.raises(ShapeError, match="top_tokens"):
        category_latents(np.array([1, 2]), tok, ROYAL)


def test_keyword_coverage_minilm():
    """Table 4 keywords that are no single WordPiece token of bert-base-uncased are reported."""
    cov = keyword_coverage(minilm_tokenizer())
    assert cov["MonthNames"] == {"matchable": list(load_keywords()["MonthNames"]), "missing": []}
    assert "biweekly" in cov["Calendar"]["missing"] and "king" in cov["People/Roles"]["matchable"]
    assert cov["Countries"]["missing"] == []


# ---------------------------------------------------------------------------------------------
# semantic subspaces


def vocab_ids(tok) -> dict[str, int]:
    words = ["king", "queen", "rain", "snow", "the", "and", "of", "dog"]
    return {w: ids_of(tok, w)[0] for w in words}


KW = {"Royal": ["king", "queen"], "Weather": ["rain", "snow"]}


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def planted_world(seed: int = 0, n: int = 200, d: int = 16):
    """Latents 0-59 Royal (B = rotated A), 60-119 Weather (independent), the rest no keyword."""
    rng = np.random.default_rng(seed)
    ids = vocab_ids(minilm_tokenizer())
    filler = [ids["the"], ids["and"], ids["of"], ids["dog"]]
    top_a = rng.choice(filler, size=(n, 5))
    top_b = rng.choice(filler, size=(n, 5))
    top_a[:60, 0] = top_b[:60, 2] = ids["king"]
    top_a[60:120, 1] = top_b[60:120, 0] = ids["rain"]
    dec_a = rng.standard_normal((n, d))
    dec_b = rng.standard_normal((n, d))
    dec_b[:60] = dec_a[:60] @ random_rotation(d, rng) + 0.05 * rng.standard_normal((60, d))
    pairing = Pairing(np.arange(n), np.arange(n), np.ones(n), "many_to_one", "pearson")
    return pairing, dec_a, dec_b, top_a, top_b


def rows_by_category(rows):
    return {r["category"]: r for r in rows}


def test_planted_rotation_found_and_independent_category_not():
    pairing, dec_a, dec_b, top_a, top_b = planted_world()
    rows = rows_by_category(semantic_subspaces(
        pairing, dec_a, dec_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=199, seed=3))
    royal, weather = rows["Royal"], rows["Weather"]
    assert royal["status"] == weather["status"] == "ok"
    assert royal["n_pairs"] == weather["n_pairs"] == 60
    assert royal["idx_a"] == list(range(60)) and royal["keywords"] == ["king"]
    assert royal["keyword_counts_a"] == {"king": 60} and weather["keyword_counts_b"] == {"rain": 60}
    assert royal["warnings"] == []  # 60 pairs > 16 dims
    for m in ("svcca", "rsa"):
        s = royal["metrics"][m]
        assert s["observed"] > 0.9
        assert s["test1_p"] == s["test2_p"] == 1 / 200
        assert s["test1_null_mean"] < 0.6 and s["test2_null_mean"] < 0.6
        w = weather["metrics"][m]
        assert w["test1_p"] > 0.05 and w["test2_p"] > 0.05
        assert abs(w["observed"] - w["test2_null_mean"]) < 3 * w["test2_null_std"]
    json.dumps(list(rows.values()))  # JSON-ready
    again = semantic_subspaces(
        pairing, dec_a, dec_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=199, seed=3)
    assert rows_by_category(again) == rows  # deterministic


def test_pairs_must_share_a_keyword_and_small_categories_are_skipped():
    pairing, dec_a, dec_b, top_a, top_b = planted_world()
    ids = vocab_ids(minilm_tokenizer())
    top_b[:60, 2] = ids["queen"]  # both Royal, but A says king and B says queen
    top_b[:3, 3] = ids["king"]  # only three pairs share "king"
    rows = rows_by_category(semantic_subspaces(
        pairing, dec_a, dec_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=19, min_pairs=5))
    royal = rows["Royal"]
    assert royal["n_latents_a"] == royal["n_latents_b"] == 60
    assert royal["n_pairs"] == 3 and royal["status"] == "skipped"
    assert "min_pairs=5" in royal["reason"] and royal["metrics"] == {}
    rows = rows_by_category(semantic_subspaces(
        pairing, dec_a, dec_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=19, min_pairs=3))
    assert rows["Royal"]["status"] == "ok" and rows["Royal"]["n_pairs"] == 3


def test_svcca_width_warning_and_metric_level_skip():
    pairing, dec_a, dec_b, top_a, top_b = planted_world(d=16)
    rng = np.random.default_rng(5)
    wide_a = np.hstack([dec_a, rng.standard_normal((200, 64))])  # 80 dims > 60 pairs
    wide_b = np.hstack([dec_b, rng.standard_normal((200, 64))])
    rows = rows_by_category(semantic_subspaces(
        pairing, wide_a, wide_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=19,
        metrics=("svcca",)))
    assert "svcca" in rows["Royal"]["warnings"][0]
    assert rows["Weather"]["metrics"]["svcca"]["observed"] > 0.85  # independent rows, yet high
    rows = rows_by_category(semantic_subspaces(
        pairing, dec_a, dec_b, top_a, top_b, minilm_tokenizer(), KW, n_perm=19,
        metrics=("svcca", "rsa"), metric_kwargs={"svcca": {"k": 17}}))
    assert "skipped" in rows["Royal"]["metrics"]["svcca"]  # k = 17 > 16 dims: cannot score
    assert rows["Royal"]["metrics"]["rsa"]["observed"] > 0.9  # the other metric still scores


def test_bad_arguments():
    pairing, dec_a, dec_b, top_a, top_b = planted_world()
    tok = minilm_tokenizer()
    with pytest.raises(ConfigError, match="n_perm"):
        semantic_subspaces(pairing, dec_a, dec_b, top_a, top_b, tok, KW, n_perm=5)
    with pytest.raises(ConfigError, match="min_pairs"):
        semantic_subspaces(pairing, dec_a, dec_b, top_a, top_b, tok, KW, min_pairs=2)
    with pytest.raises(ShapeError, match="top_a"):
        semantic_subspaces(pairing, dec_a, dec_b, top_a[:10], top_b, tok, KW)
    with pytest.raises(ShapeError, match="idx_b"):
        bad = Pairing(np.arange(3), np.array([0, 1, 999]), np.ones(3), "many_to_one", "pearson")
        semantic_subspaces(bad, dec_a, dec_b, top_a, top_b, tok, KW)
    with pytest.raises(ConfigError, match="pairing"):
        semantic_subspaces(object(), dec_a, dec_b, top_a, top_b, tok, KW)
    with pytest.raises(ConfigError, match="metric_kwargs"):
        semantic_subspaces(pairing, dec_a, dec_b, top_a, top_b, tok, KW,
                           metric_kwargs={"cka": {}})
    with pytest.raises(ConfigError, match="metrics"):
        semantic_subspaces(pairing, dec_a, dec_b, top_a, top_b, tok, KW, metrics=())


def null_world(rng: np.random.Generator, ids: dict[str, int], n: int = 150, d: int = 8):
    """Planted independence: random decoders, random keyword tokens, a random fixed pairing."""
    pool = [ids[w] for w in ("king", "rain", "the", "and", "of", "dog")]
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.2])
    top_a = rng.choice(pool, size=(n, 5), p=p)
    top_b = rng.choice(pool, size=(n, 5), p=p)
    pairing = Pairing(np.arange(n), rng.permutation(n), np.ones(n), "many_to_one", "pearson")
    return pairing, rng.standard_normal((n, d)), rng.standard_normal((n, d)), top_a, top_b


@pytest.mark.slow
def test_calibration_under_planted_independence():
    """200 null worlds, n_perm 99: P(p <= 0.05) of Tests 1 and 2 lies in [0.03, 0.07].

    Pooled over both categories and both metrics (800 p-values per test), each world's pairing,
    decoders and keyword tokens drawn independently. About 80 s on 2 cores (Test 2 re-scores
    every draw), hence slow. The p-values are also roughly uniform: mean near 0.5.
    """
    tok = minilm_tokenizer()
    ids = vocab_ids(tok)
    rng = np.random.default_rng(2024)
    p1, p2 = [], []
    start = time.perf_counter()
    for rep in range(200):
        rows = semantic_subspaces(*null_world(rng, ids), tok, KW, n_perm=99, seed=rep)
        for row in rows:
            assert row["status"] == "ok", row["reason"]
            for s in row["metrics"].values():
                p1.append(s["test1_p"])
                p2.append(s["test2_p"])
    elapsed = time.perf_counter() - start
    fpr1, fpr2 = np.mean(np.array(p1) <= 0.05), np.mean(np.array(p2) <= 0.05)
    print(f"calibration: {len(p1)} p-values per test, Test 1 FPR {fpr1:.4f}, "
          f"Test 2 FPR {fpr2:.4f}, {elapsed:.1f} s")
    assert 0.03 <= fpr1 <= 0.07, fpr1
    assert 0.03 <= fpr2 <= 0.07, fpr2
    assert 0.45 <= np.mean(p1) <= 0.55 and 0.45 <= np.mean(p2) <= 0.55
