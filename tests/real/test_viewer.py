"""The self-contained decoder-geometry viewer (featgeom.real.viewer)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.real.viewer import keep_points, write_viewer

EVIL = '</script><script>alert("x")</script> & <b>'


def pca2(x: np.ndarray) -> np.ndarray:
    """Deterministic 2-D PCA (signs fixed by the largest loading), X (N, d) -> (N, 2)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2, [0]] + 1e-300)
    return centred @ vt.T


def _inputs(n_a: int = 30, n_b: int = 25, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    dec_a, dec_b = rng.standard_normal((n_a, d)), rng.standard_normal((n_b, d))
    idx_a, idx_b = np.array([0, 3, 3, 7]), np.array([5, 1, 2, 9])
    score = np.array([0.91, 0.62, 0.40, 0.75])
    labels_a = [f"tok_a{i}" for i in range(n_a)]
    labels_b = [f"tok_b{i}" for i in range(n_b)]
    labels_a[3] = EVIL
    return dec_a, dec_b, idx_a, idx_b, score, labels_a, labels_b


def _write(path, **kw):
    args = _inputs()
    return write_viewer(path, *args, title=kw.pop("title", "MiniLM L6 vs L3"), projection=kw.pop("projection", pca2),
                        **kw)


def _viewer_data(page: str) -> dict:
    """The linking script's embedded JSON (V = {...};)."""
    return json.loads(re.search(r"var V = (\{.*?\});\n", page).group(1))


def test_page_is_self_contained_and_holds_both_panels_and_the_pairing(tmp_path):
    page = _write(tmp_path / "v.html", names=("L6", "L3")).read_text()
    assert re.search(r"<script[^>]*\bsrc\s*=", page) is None  # plotly.js inlined, nothing fetched
    assert re.search(r"<link\b", page) is None and "<iframe" not in page
    assert "plotly.js v" in page and "Plotly.newPlot" in page  # the bundle itself is in the page
    assert page.count("<script") == page.count("</script>") == 4  # error counter, plotly config, bundle, plot
    data = _viewer_data(page)
    assert data["names"] == ["L6", "L3"]
    assert len(data["pos"][0]) == 30 and len(data["pos"][1]) == 25
    assert data["partners"][0]["3"] == [[1, 0.62], [2, 0.4]]  # latent 3 has two partners, best first
    assert data["partners"][1]["9"] == [[7, 0.75]]
    figure = json.loads(re.search(r'Plotly\.newPlot\(\s*"featgeom-viewer",\s*(\[.*?\]),\s*\{', page, re.DOTALL).group(1))
    assert len(figure) == 6  # A paired / unpaired, B paired / unpaired, two highlight traces
    assert len(figure[0]["x"]) == 3 and len(figure[1]["x"]) == 27 and len(figure[2]["x"]) == 4
    assert "L3 latent 9<br>tok_b9<br>&#8596; L6 7 (corr 0.750)" in figure[2]["text"]


def test_same_seed_gives_the_same_bytes(tmp_path):
    one = _write(tmp_path / "a.html", seed=3, max_points=10).read_bytes()
    two = _write(tmp_path / "b.html", seed=3, max_points=10).read_bytes()
    assert one == two
    assert _write(tmp_path / "c.html", seed=4, max_points=10).read_bytes() != one  # seed picks the unpaired


def test_labels_and_title_are_escaped(tmp_path):
    page = _write(tmp_path / "v.html", title="a </script> <b>title</b>").read_text()
    assert EVIL not in page and "</script><script>alert" not in page
    assert "<title>a &lt;/script&gt; &lt;b&gt;title&lt;/b&gt;</title>" in page
    data = _viewer_data(page)
    assert data["labels"][0]["3"] == EVIL  # the JSON still carries the label exactly
    figure = re.search(r'Plotly\.newPlot\(\s*"featgeom-viewer",\s*(\[.*?\]),\s*\{', page, re.DOTALL).group(1)
    assert "&lt;\\u002fscript&gt;" in figure  # hover text escaped for Plotly's pseudo-HTML


def test_max_points_keeps_paired_latents_first():
    idx_a, idx_b = np.array([0, 1, 2, 3, 4]), np.array([4, 3, 2, 1, 0])
    score = np.array([0.1, 0.9, 0.5, 0.8, 0.3])
    keep_a, keep_b, pairs = keep_points(20, 20, idx_a, idx_b, score, 3, seed=0)
    assert keep_a.tolist() == [1, 2, 3] and keep_b.tolist() == [1, 2, 3]  # the three best pairs
    assert pairs.tolist() == [False, True, True, True, False]
    keep_a, keep_b, pairs = keep_points(20, 20, idx_a, idx_b, score, 8, seed=0)
    assert set(range(5)) <= set(keep_a.tolist()) and len(keep_a) == len(keep_b) == 8 and pairs.all()
    assert keep_points(20, 20, idx_a, idx_b, score, 8, seed=0)[0].tolist() == keep_a.tolist()


def test_projection_sees_only_kept_unit_rows(tmp_path):
    seen = []

    def record(x):
        seen.append(x.copy())
        return pca2(x)

    _write(tmp_path / "v.html", projection=record, max_points=12)
    assert [x.shape for x in seen] == [(12, 12), (12, 12)]
    np.testing.assert_allclose(np.linalg.norm(seen[0], axis=1), 1.0)


@pytest.mark.parametrize("change, error, name", [
    ({'dec_a': np.ones(5)}, ShapeError, "dec_a"),
    ({'dec_b': np.zeros((25, 12))}, DataError, "dec_b"),
    ({'dec_a': np.full((30, 12), np.nan)}, DataError, "dec_a"),
    ({'idx_a': np.array([0, 3, 30, 7])}, ConfigError, "idx_a"),
    ({'idx_b': np.array([5, 1, -1, 9])}, ConfigError, "idx_b"),
    ({'idx_a': np.array([0.0, 3.0, 3.0, 7.0])}, ConfigError, "idx_a"),
    ({'score': np.array([0.1, 0.2])}, ShapeError, "score"),
    ({'labels_a': ["x"] * 29}, ShapeError, "labels_a"),
    ({'labels_b': [1] * 25}, ConfigError, "labels_b"),
    ({'max_points': 0}, ConfigError, "max_points"),
    ({'names': ("A", "A")}, ConfigError, "names"),
    ({'projection': lambda x: x[:, :3]}, ShapeError, "projection"),
])
def test_bad_inputs_raise_one_named_error(tmp_path, change, error, name):
    keys = ("dec_a", "dec_b", "idx_a", "idx_b", "score", "labels_a", "labels_b")
    args = dict(zip(keys, _inputs()))
    options = {'title': "t", 'projection': pca2}
    for key, value in change.items():
        (args if key in keys else options)[key] = value
    with pytest.raises(error, match=name):
        write_viewer(tmp_path / "v.html", *(args[k] for k in keys), **options)
    assert not (tmp_path / "v.html").exists()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_runs_in_headless_chromium_and_links_the_panels(tmp_path):
    page = _write(tmp_path / "v.html")
    cmd = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=10000", "--dump-dom", page.as_uri() + "#select=a:3"]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True).stdout
    body = re.search(r"<body([^>]*)>", dom).group(1)
    assert 'data-viewer-ready="1"' in body and 'data-js-errors="0"' in body, body
    assert 'data-highlighted="3"' in body, body  # latent 3 of A and both its partners in B
    info = re.search(r'<div id="featgeom-info">([^<]*)</div>', dom).group(1)
    assert "B latent 1 (corr 0.620)" in info and "B latent 2 (corr 0.400)" in info
    assert "&lt;/script&gt;" in info  # the label shown as text, not parsed


@pytest.mark.slow
def test_real_umap_on_300_latents_is_deterministic(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((6, 32))
    dec_a = np.repeat(centres, 50, axis=0) + 0.2 * rng.standard_normal((300, 32))
    dec_b = dec_a[::-1] + 0.05 * rng.standard_normal((300, 32))
    idx = np.arange(0, 300, 3)
    args = (dec_a, dec_b, idx, 299 - idx, np.linspace(0.3, 0.95, idx.size),
            [f"a{i}" for i in range(300)], [f"b{i}" for i in range(300)])
    one = write_viewer(tmp_path / "a.html", *args, title="umap", seed=1).read_bytes()
    two = write_viewer(tmp_path / "b.html", *args, title="umap", seed=1).read_bytes()
    assert one == two
    pos = np.array(list(_viewer_data(one.decode())["pos"][0].values()))
    assert pos.shape == (300, 2) and np.ptp(pos, axis=0).min() > 1.0  # a real 2-D layout, not collapsed
    # the six planted clusters stay separate: nearest neighbours in the layout share a centre
    xy = np.array([_viewer_data(one.decode())["pos"][0][str(i)] for i in range(300)])
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(300) * 1e9
    assert (dist.argmin(axis=1) // 50 == np.arange(300) // 50).mean() > 0.95
