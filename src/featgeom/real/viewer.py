"""A self-contained HTML viewer of two SAEs' decoder geometry with linked paired latents.

``write_viewer`` embeds each SAE's decoder directions in 2-D (UMAP, cosine metric, on the
unit-normalised rows dec / ||dec||; or any ``projection`` callable) and draws the two embeddings
side by side in one Plotly figure.  Paired latents (idx_a[i] <-> idx_b[i], correlation score[i];
a latent may have several partners) are coloured by their best partner's score, unpaired ones are
faint grey.  Hovering a latent highlights it and its partner(s) in the other panel; a click pins
the highlight, a double click clears it; the URL fragment ``#select=a:12`` (or ``b:7``) pins a
latent when the page opens.  Hover text: the latent index, its label (e.g. its top activating
tokens), each partner's index and the correlation.

The page needs no network: plotly.js is inlined (about 4.8 MB), there are no ``<script src>``
or ``<link>`` tags, labels are HTML-escaped for Plotly's hover text and every JSON blob escapes
``<``, ``>``, ``/`` and ``&``, so a label such as ``</script>`` cannot end a script element.  The
same inputs and seed give the same bytes (fixed div id, deterministic UMAP with
``random_state=seed``, coordinates rounded to 5 decimals).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.formulas import unit_rows

DIV_ID = "featgeom-viewer"
LABEL_CHARS = 120  # longer labels are cut (with an ellipsis) in the page
HOVER_PARTNERS = 5  # partners listed in a hover text (the rest counted)
UMAP_MIN_POINTS = 4
WEBGL_POINTS = 10_000  # panels with more points are drawn with WebGL (Scattergl), others as SVG

Projection = Callable[[np.ndarray], np.ndarray]


def write_viewer(
    path: str | Path,
    dec_a: Any,
    dec_b: Any,
    idx_a: Any,
    idx_b: Any,
    score: Any,
    labels_a: Sequence[str],
    labels_b: Sequence[str],
    *,
    title: str,
    names: tuple[str, str] = ("A", "B"),
    seed: int = 0,
    projection: Projection | None = None,
    max_points: int | None = None,
) -> Path:
    """Write the viewer page to ``path`` (atomically) and return the path.

    dec_a (N_a, d_a), dec_b (N_b, d_b): decoder directions, one row per latent (any nonzero
    norm); idx_a, idx_b (P,) int latent indices and score (P,) the correlation of each pair;
    labels_a (N_a,), labels_b (N_b,) strings.  projection: X (N, d) unit rows -> (N, 2), replacing
    UMAP.  max_points: at most this many latents per panel, chosen deterministically: pairs by
    descending score (ties by position) while both panels have room, then unpaired latents drawn
    with ``seed``; a pair is drawn only when both its latents are kept.
    """
    dec_a = _unit_rows(dec_a, "dec_a")
    dec_b = _unit_rows(dec_b, "dec_b")
    idx_a, idx_b, score = _check_pairs(idx_a, idx_b, score, dec_a.shape[0], dec_b.shape[0])
    labels_a = _check_labels(labels_a, dec_a.shape[0], "labels_a")
    labels_b = _check_labels(labels_b, dec_b.shape[0], "labels_b")
    names = _check_names(names)
    if not isinstance(title, str):
        raise ConfigError(f"title: expected a string, got {type(title).__name__}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed: expected an integer >= 0, got {seed!r}")
    if projection is not None and not callable(projection):
        raise ConfigError(f"projection: expected a callable X (N, d) -> (N, 2), got {type(projection).__name__}")
    keep_a, keep_b, pair_keep = keep_points(dec_a.shape[0], dec_b.shape[0], idx_a, idx_b, score, max_points, seed)
    idx_a, idx_b, score = idx_a[pair_keep], idx_b[pair_keep], score[pair_keep]
    project = projection if projection is not None else umap_projection(int(seed))
    xy_a = project_rows(dec_a[keep_a], project, "dec_a", projection is None)
    xy_b = project_rows(dec_b[keep_b], project, "dec_b", projection is None)
    partners = (partner_map(idx_a, idx_b, score), partner_map(idx_b, idx_a, score))
    panels = [Panel(names[0], keep_a, xy_a, [labels_a[i] for i in keep_a], partners[0]),
              Panel(names[1], keep_b, xy_b, [labels_b[i] for i in keep_b], partners[1])]
    page = render_page(panels, title, int(idx_a.size))
    return _write_atomic(Path(path), page)


class Panel:
    """One side of the viewer: kept latent indices (M,), their 2-D positions (M, 2), labels, and
    partners {latent: [(partner latent, score), ...] sorted by descending score}."""

    def __init__(self, name: str, latents: np.ndarray, xy: np.ndarray, labels: list[str],
                 partners: dict[int, list[tuple[int, float]]]) -> None:
        self.name, self.latents, self.xy, self.labels, self.partners = name, latents, xy, labels, partners

    def paired_mask(self) -> np.ndarray:
        return np.array([int(i) in self.partners for i in self.latents], dtype=bool)


# ------------------------------------------------------------------ choosing and embedding points
def keep_points(n_a: int, n_b: int, idx_a: np.ndarray, idx_b: np.ndarray, score: np.ndarray,
                max_points: int | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kept latents of A sorted, kept latents of B sorted, bool (P,) pairs with both ends kept)."""
    if max_points is None:
        return np.arange(n_a), np.arange(n_b), np.ones(idx_a.size, dtype=bool)
    if not isinstance(max_points, (int, np.integer)) or isinstance(max_points, bool) or max_points < 1:
        raise ConfigError(f"max_points: expected a positive integer or None, got {max_points!r}")
    kept_a: set[int] = set()
    kept_b: set[int] = set()
    for p in np.argsort(-score, kind="stable"):
        a, b = int(idx_a[p]), int(idx_b[p])
        if len(kept_a | {a}) <= max_points and len(kept_b | {b}) <= max_points:
            kept_a.add(a)
            kept_b.add(b)
    rng = np.random.default_rng(seed)
    out = []
    for n, kept in ((n_a, kept_a), (n_b, kept_b)):
        rest = np.setdiff1d(np.arange(n), np.fromiter(kept, dtype=np.int64, count=len(kept)))
        extra = rng.permutation(rest)[: max(0, max_points - len(kept))]
        out.append(np.sort(np.concatenate([np.fromiter(kept, dtype=np.int64, count=len(kept)), extra])))
    pair_keep = np.isin(idx_a, out[0]) & np.isin(idx_b, out[1])
    return out[0], out[1], pair_keep


def umap_projection(seed: int) -> Projection:
    """UMAP to 2-D, cosine metric, random_state=seed (deterministic, single-threaded), n_neighbors
    min(15, N - 1)."""

    def project(x: np.ndarray) -> np.ndarray:
        import warnings

        import umap

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # n_jobs overridden by random_state; spectral init fallbacks
            reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed,
                                n_neighbors=min(15, x.shape[0] - 1))
            return reducer.fit_transform(x)

    return project


def pca_projection(x: np.ndarray) -> np.ndarray:
    """The first two principal components of x (N, d): (x - mean) V[:, :2] with V the right
    singular vectors, each column's sign fixed so its largest-magnitude entry is positive
    (deterministic; seconds where UMAP's JIT compilation takes a minute)."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    v = vt[:2].T
    v = v * np.sign(v[np.abs(v).argmax(axis=0), [0, 1]])
    return centred @ v


PROJECTIONS = ("umap", "pca")


def named_projection(name: str) -> Projection | None:
    """``write_viewer``'s projection argument for ``name`` (PROJECTIONS): None for 'umap' (its
    default, with its minimum-size check), :func:`pca_projection` for 'pca'; ConfigError otherwise."""
    if name == "umap":
        return None
    if name == "pca":
        return pca_projection
    raise ConfigError(f"projection: unknown {name!r} (allowed: {', '.join(PROJECTIONS)})")


def project_rows(x: np.ndarray, project: Projection, name: str, is_umap: bool) -> np.ndarray:
    """project(x) checked to be a finite (N, 2) array, rounded to 5 decimals."""
    if is_umap and x.shape[0] < UMAP_MIN_POINTS:
        raise DataError(f"{name}: UMAP needs at least {UMAP_MIN_POINTS} latents, got {x.shape[0]} "
                        f"(pass projection= for fewer)")
    xy = np.asarray(project(x), dtype=np.float64)
    if xy.shape != (x.shape[0], 2):
        raise ShapeError(f"projection: must return shape ({x.shape[0]}, 2) for {name}, got {xy.shape}")
    if not np.all(np.isfinite(xy)):
        raise DataError(f"projection: returned NaN or inf for {name}")
    return np.round(xy, 5)


def partner_map(mine: np.ndarray, theirs: np.ndarray, score: np.ndarray) -> dict[int, list[tuple[int, float]]]:
    """{latent: [(partner, score), ...]} from pair arrays (P,), each list by descending score."""
    out: dict[int, list[tuple[int, float]]] = {}
    for p in np.argsort(-score, kind="stable"):
        out.setdefault(int(mine[p]), []).append((int(theirs[p]), round(float(score[p]), 6)))
    return out


# ------------------------------------------------------------------ the page
def render_page(panels: list[Panel], title: str, n_pairs: int) -> str:
    """The full HTML page: header, the Plotly figure (inline plotly.js) and the linking script."""
    import plotly.io as pio

    fig = build_figure(panels)
    body = pio.to_html(fig, include_plotlyjs=True, full_html=False, div_id=DIV_ID,
                       post_script=linking_script(panels), config={"displaylogo": False, "responsive": True},
                       default_height="640px", validate=False)
    head = html.escape(title)
    summary = html.escape(f"{panels[0].name}: {panels[0].latents.size} latents, {panels[1].name}: "
                          f"{panels[1].latents.size} latents, {n_pairs} pairs. Hover or click a latent to "
                          f"highlight its partners (click pins, double click clears).")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{head}</title>\n"
            "<style>body{font-family:sans-serif;margin:1em}#featgeom-info{font-family:monospace;"
            "white-space:pre-wrap;min-height:3em}</style>\n</head>\n"
            "<body data-viewer-ready=\"0\" data-js-errors=\"0\">\n"
            "<script>(function(){function count(){var b=document.body;"
            "b.setAttribute('data-js-errors',String(Number(b.getAttribute('data-js-errors'))+1));}"
            "window.addEventListener('error',count);window.addEventListener('unhandledrejection',count);})();"
            "</script>\n"
            f"<h1>{head}</h1>\n<p>{summary}</p>\n<div id=\"featgeom-info\"></div>\n{body}\n</body>\n</html>\n")


def build_figure(panels: list[Panel]) -> Any:
    """Two subplots; traces: [A paired, A unpaired, B paired, B unpaired, A highlight, B highlight]."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=[html.escape(p.name) for p in panels],
                        horizontal_spacing=0.06)
    scores = [s for p in panels for lst in p.partners.values() for _, s in lst]
    cmin, cmax = (min(scores), max(scores)) if scores else (0.0, 1.0)
    for side, panel in enumerate(panels):
        paired = panel.paired_mask()
        other = panels[1 - side].name
        text = [hover_text(panel.name, int(i), lab, panel.partners.get(int(i), []), other)
                for i, lab in zip(panel.latents, panel.labels)]
        custom = [[side, int(i)] for i in panel.latents]
        best = [panel.partners[int(i)][0][1] for i in panel.latents[paired]]
        for mask, marker, label in (
            (paired, {"size": 6, "color": best, "colorscale": "Viridis", "cmin": cmin, "cmax": cmax,
              "showscale": side == 1, "colorbar": {"title": "corr"}}, "paired"),
            (~paired, {"size": 4, "color": "#b0b0b0", "opacity": 0.3}, "unpaired"),
        ):
            sel = np.flatnonzero(mask)
            scatter = go.Scattergl if panel.latents.size > WEBGL_POINTS else go.Scatter
            fig.add_trace(scatter(
                x=panel.xy[sel, 0].tolist(), y=panel.xy[sel, 1].tolist(), mode="markers", marker=marker,
                text=[text[k] for k in sel], customdata=[custom[k] for k in sel], hoverinfo="text",
                name=f"{html.escape(panel.name)} {label}"), row=1, col=side + 1)
    ring = {"size": 13, "color": "rgba(0,0,0,0)", "line": {"width": 2.5, "color": "#e4002b"}}
    for side in range(2):
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", hoverinfo="skip", showlegend=False, marker=ring,
                                 name="highlight"), row=1, col=side + 1)
    fig.update_layout(hovermode="closest", legend={"orientation": "h"},
                      margin={"l": 30, "r": 30, "t": 40, "b": 30}, template="plotly_white")
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def hover_text(name: str, latent: int, label: str, partners: list[tuple[int, float]], other: str) -> str:
    """'A 12<br>label<br>-> B 40 (corr 0.830)' (Plotly's hover pseudo-HTML; the label escaped)."""
    lines = [f"{html.escape(name)} latent {latent}", html.escape(_short(label))]
    for j, s in partners[:HOVER_PARTNERS]:
        lines.append(f"&#8596; {html.escape(other)} {j} (corr {s:.3f})")
    if len(partners) > HOVER_PARTNERS:
        lines.append(f"+{len(partners) - HOVER_PARTNERS} more partners")
    if not partners:
        lines.append("unpaired")
    return "<br>".join(lines)


def linking_script(panels: list[Panel]) -> str:
    """The inline JS that links the panels (runs after Plotly.newPlot; {plot_id} is the div id)."""
    data = {
        "names": [p.name for p in panels],
        "pos": [{str(int(i)): xy.tolist() for i, xy in zip(p.latents, p.xy)} for p in panels],
        "labels": [{str(int(i)): _short(lab) for i, lab in zip(p.latents, p.labels)} for p in panels],
        "partners": [{str(k): [[j, s] for j, s in v] for k, v in p.partners.items()} for p in panels],
        "hl": [4, 5],
    }
    return _LINK_JS.replace("__DATA__", safe_json(data))


_LINK_JS = """
(function () {
  var gd = document.getElementById('{plot_id}');
  var V = __DATA__;
  var info = document.getElementById('featgeom-info');
  var pinned = null;
  function show(side, latent) {
    var other = 1 - side, key = String(latent);
    var xs = [[], []], ys = [[], []];
    var me = V.pos[side][key];
    if (!me) { return; }
    xs[side].push(me[0]); ys[side].push(me[1]);
    var ps = V.partners[side][key] || [];
    var lines = [V.names[side] + ' latent ' + key + ': ' + (V.labels[side][key] || '')];
    ps.forEach(function (p) {
      var q = V.pos[other][String(p[0])];
      if (q) { xs[other].push(q[0]); ys[other].push(q[1]); }
      lines.push('  <-> ' + V.names[other] + ' latent ' + p[0] + ' (corr ' + p[1].toFixed(3) + '): ' +
                 (V.labels[other][String(p[0])] || ''));
    });
    if (!ps.length) { lines.push('  unpaired'); }
    Plotly.restyle(gd, {x: xs, y: ys}, V.hl);
    info.textContent = lines.join('\\n');
    document.body.setAttribute('data-highlighted', String(xs[0].length + xs[1].length));
  }
  function clear() {
    Plotly.restyle(gd, {x: [[], []], y: [[], []]}, V.hl);
    info.textContent = '';
    document.body.setAttribute('data-highlighted', '0');
  }
  function target(ev) {
    var p = ev && ev.points && ev.points[0];
    return p && p.customdata ? p.customdata : null;
  }
  gd.on('plotly_hover', function (ev) { var t = target(ev); if (t && !pinned) { show(t[0], t[1]); } });
  gd.on('plotly_unhover', function () { if (!pinned) { clear(); } });
  gd.on('plotly_click', function (ev) { var t = target(ev); if (t) { pinned = t; show(t[0], t[1]); } });
  gd.on('plotly_doubleclick', function () { pinned = null; clear(); });
  var m = /select=([ab]):(\\d+)/.exec(window.location.hash);
  if (m) { pinned = [m[1] === 'a' ? 0 : 1, Number(m[2])]; show(pinned[0], pinned[1]); }
  document.body.setAttribute('data-viewer-ready', '1');
})();
"""


def safe_json(obj: Any) -> str:
    """JSON safe inside a <script> element: ASCII only, with <, >, / and & as \\u escapes."""
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=True, allow_nan=False)
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("/", "\\u002f"), ("&", "\\u0026")):
        text = text.replace(char, code)
    return text


# ------------------------------------------------------------------ validation and output
def _unit_rows(dec: Any, name: str) -> np.ndarray:
    """dec (N, d) as float64 unit rows (:func:`featgeom.formulas.unit_rows`); ShapeError unless 2-D,
    DataError for NaN/inf or zero rows."""
    try:
        arr = np.asarray(dec, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: not a numeric array ({exc})") from None
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ShapeError(f"{name}: expected a 2-D array (latents, d) with both sizes >= 1, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or inf")
    return unit_rows(arr, name)


def _check_pairs(idx_a: Any, idx_b: Any, score: Any, n_a: int, n_b: int) -> tuple[np.ndarray, ...]:
    out = []
    for name, value, n in (("idx_a", idx_a, n_a), ("idx_b", idx_b, n_b)):
        arr = np.asarray(value)
        if arr.ndim != 1:
            raise ShapeError(f"{name}: expected a 1-D array of latent indices, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError(f"{name}: expected integer latent indices, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
        bad = np.flatnonzero((arr < 0) | (arr >= n))
        if bad.size:
            raise ConfigError(f"{name}: index {int(arr[bad[0]])} (position {int(bad[0])}) out of range [0, {n})")
        out.append(arr)
    s = np.asarray(score, dtype=np.float64)
    if s.ndim != 1:
        raise ShapeError(f"score: expected a 1-D array, got shape {s.shape}")
    if not out[0].size == out[1].size == s.size:
        raise ShapeError(f"idx_a, idx_b, score: lengths differ ({out[0].size}, {out[1].size}, {s.size})")
    if not np.all(np.isfinite(s)):
        raise DataError("score: contains NaN or inf")
    return out[0], out[1], s


def _check_labels(labels: Any, n: int, name: str) -> list[str]:
    if isinstance(labels, str) or not hasattr(labels, "__len__"):
        raise ConfigError(f"{name}: expected a sequence of {n} strings, got {type(labels).__name__}")
    labels = list(labels)
    if len(labels) != n:
        raise ShapeError(f"{name}: {len(labels)} labels for {n} latents")
    for i, lab in enumerate(labels):
        if not isinstance(lab, str):
            raise ConfigError(f"{name}[{i}]: expected a string, got {type(lab).__name__}")
    return [str(lab) for lab in labels]


def _check_names(names: Any) -> tuple[str, str]:
    if isinstance(names, str) or len(names) != 2 or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"names: expected two non-empty strings, got {names!r}")
    if names[0] == names[1]:
        raise ConfigError(f"names: the two panels need different names, got {names!r}")
    return str(names[0]), str(names[1])


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "\u2026"


def _write_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
