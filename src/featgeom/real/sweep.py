"""The universality paper's pipeline on two real models: every layer of A against every layer of B.

Steps (each cached, so a rerun reuses what exists and a killed run resumes):

1. load both models; refuse unless they share a tokenizer (the method pairs latents by their
   activations on the *same* tokens);
2. cut the corpus into ``n_windows`` windows of ``window`` ids that both models read; positions of
   special tokens (BOS / CLS / SEP / pad) are masked in both, identically;
3. hook the residual stream after each block, stream activations to the store;
4. one SAE per layer: pretrained (``sae_a`` / ``sae_b`` specs) or trained by featgeom on the
   stored activations; its width is checked against the hooked layer;
5. encode each layer once; top-activating tokens of every latent; the non-concept filter (latents
   whose top tokens include newline / space / punctuation / special tokens: paper's Appendix F,
   actually applied) gives the keep masks;
6. per layer pair, :func:`featgeom.compare.compare_latents` (pairing modes, SVCCA correct and
   legacy top-1, RSA, CKA, Procrustes, mean activation correlation, pairs kept) with the valid
   re-pairing null (whole windows permuted by default), one job per pair in the results database;
7. on the most similar pair: semantic subspaces (Test 1 / Test 2) and the side-by-side viewer;
8. the superposition proxy (covariance spectrum) of every layer, beside synthetic family members.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from featgeom.errors import ConfigError, DataError
from featgeom.real.config import RealConfig
from featgeom.store import canonical_json

EXPERIMENT = "real"
GENERATOR = "featgeom.real.sweep/1"
SEMANTIC_METRICS = ("svcca", "svcca_legacy", "rsa")  # legacy: the paper's top-1 numbers, to hold against theirs
ANALYSIS = "layers"  # results rows: member_a / member_b name the layers, condition_json has both layers


@dataclass
class Side:
    """One model's state in a sweep: the model, its activations, and per layer its SAE, latent
    activations (n_tokens, N) CSR, decoder rows (N, d), top tokens (N, k) and keep mask (N,)."""

    label: str
    model: Any
    acts: Any
    layers: tuple[int, ...]
    saes: dict[int, Any] = field(default_factory=dict)
    sae_info: dict[int, dict[str, Any]] = field(default_factory=dict)
    latents: dict[int, sp.csr_matrix] = field(default_factory=dict)
    decoders: dict[int, np.ndarray] = field(default_factory=dict)
    top: dict[int, np.ndarray] = field(default_factory=dict)
    keep: dict[int, np.ndarray] = field(default_factory=dict)

    def member(self, layer: int) -> str:
        """The results-row name of one layer: '<model>:L<layer>'."""
        return f"{self.model.name}:L{layer}"


@dataclass
class SweepResult:
    """What :func:`run_sweep` produced: paths of the outputs and the stored rows."""

    out: Path
    config_hash: str
    rows: list[dict[str, Any]]
    best: tuple[int, int] | None
    semantic: list[dict[str, Any]]
    spectra: list[dict[str, Any]]
    report: Path | None = None
    viewer: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def run_sweep(cfg: RealConfig, out: str | Path, *, progress: Callable[[str], None] | None = None) -> SweepResult:
    """Run the whole comparison ``cfg`` describes into directory ``out`` (store/, results.sqlite,
    results.csv, report.html, viewer.html) and return what it measured; see the module docstring."""
    from featgeom.device import check_device
    from featgeom.store.artifacts import artifact_id
    from featgeom.store.results import ResultsDB, package_versions

    say = progress or (lambda _msg: None)
    check_device(cfg.device, "device")
    out = Path(out)
    store = out / "store"
    clock: dict[str, float] = {}
    a, b = _sides(cfg, store, say, clock)
    config_hash = artifact_id(EXPERIMENT, cfg.to_dict(), GENERATOR)
    db = ResultsDB(out / "results.sqlite")
    versions = package_versions(("transformers",))
    db.register_run(config_hash, EXPERIMENT, _preset_label(cfg), cfg.to_dict(), versions)
    session = db.start_session(config_hash)
    start = time.perf_counter()
    done = db.finished_jobs(config_hash)
    for la in a.layers:
        for lb in b.layers:
            name = f"compare:{a.member(la)}:{b.member(lb)}"
            if name in done:
                continue
            say(f"comparing {a.member(la)} with {b.member(lb)}")
            t0 = time.perf_counter()
            rows = compare_layers(cfg, a, b, la, lb)
            db.record_job(config_hash, name, "compare", time.perf_counter() - t0, {"layer_a": la, "layer_b": lb},
                          run_rows(rows, config_hash, versions))
            db.touch_session(config_hash, session)
    clock["layer pairs"] = time.perf_counter() - start
    rows = db.results(config_hash)
    best = best_pair(rows, cfg.modes[0], a, b)
    result = SweepResult(out, config_hash, rows, best, [], [], seconds=clock)
    if best is not None and (cfg.semantic or cfg.viewer):
        t0 = time.perf_counter()
        result.semantic, result.viewer = _best_pair_extras(cfg, a, b, best, out, say)
        name = f"semantic:{a.member(best[0])}:{b.member(best[1])}"
        db.record_job(config_hash, name, "semantic", time.perf_counter() - t0, {"layer_a": best[0], "layer_b": best[1]},
                      run_rows(semantic_rows(cfg, a, b, best, result.semantic), config_hash, versions))
        clock["semantic subspaces and viewer"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result.spectra = spectra(cfg, a, b)
    clock["superposition proxy"] = time.perf_counter() - t0
    result.rows = db.results(config_hash)
    db.export_csv(out / "results.csv", config_hash)
    from featgeom.real.report import write_real_report

    result.report = write_real_report(result, cfg, a, b)
    db.touch_session(config_hash, session)
    return result


def run_rows(rows: list[dict[str, Any]], config_hash: str, versions: dict[str, str]) -> list[dict[str, Any]]:
    """Rows of one job with the run's columns (experiment, config hash, versions) added."""
    from featgeom.store.results import version_columns

    return [{**r, "experiment": EXPERIMENT, "config_hash": config_hash, **version_columns(versions)} for r in rows]


def _preset_label(cfg: RealConfig) -> str:
    return f"{cfg.model_a} vs {cfg.model_b}"


def _sides(cfg: RealConfig, store: Path, say: Callable[[str], None], clock: dict[str, float]) -> tuple[Side, Side]:
    """Load, check, extract, build SAEs and encode both models (steps 1-5). Everything that can be
    refused (models, tokenizers, layers, corpus, pretrained SAEs and their widths) is checked
    before anything is written under ``store``; converted offline models go to the user cache
    (:func:`featgeom.real.models.load_model` without a store)."""
    from featgeom.real.activations import extract_activations, same_tokens
    from featgeom.real.corpus import read_corpus, token_windows
    from featgeom.real.models import check_same_tokenizer, load_model

    t0 = time.perf_counter()
    say(f"loading {cfg.model_a} and {cfg.model_b}")
    model_a = load_model(cfg.model_a, device=cfg.device, backend=cfg.backend)
    model_b = load_model(cfg.model_b, device=cfg.device, backend=cfg.backend)
    check_same_tokenizer(model_a.tokenizer, model_b.tokenizer, ("model_a", "model_b"))
    sides = (Side("a", model_a, None, _layers(cfg.layers_a, model_a, "layers_a")),
             Side("b", model_b, None, _layers(cfg.layers_b, model_b, "layers_b")))
    windows = token_windows(model_a.tokenizer, read_corpus(cfg.corpus), n_windows=cfg.n_windows, window=cfg.window)
    for side, spec in zip(sides, (cfg.sae_a, cfg.sae_b)):
        if spec is not None:
            for layer in side.layers:
                _pretrained_sae(cfg, side, layer, spec, say)
    clock["load models, corpus and SAEs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    say(f"activations: {windows.size:,} token ids through both models")
    for side in sides:
        side.acts = extract_activations(side.model, windows, side.layers, store, batch_size=cfg.batch_size)
    same_tokens(sides[0].acts, sides[1].acts)
    clock["activations"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for side, spec in zip(sides, (cfg.sae_a, cfg.sae_b)):
        if spec is None:
            for layer in side.layers:
                _trained_sae(cfg, side, layer, store, say)
    clock["train SAEs"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for side in sides:
        for layer in side.layers:
            _encode_layer(cfg, side, layer)
    clock["encode, top tokens, filter"] = time.perf_counter() - t0
    return sides


def _layers(layers: list[int] | None, model: Any, name: str) -> tuple[int, ...]:
    """The hooked layers: all blocks when None; ConfigError for an index beyond the model."""
    if layers is None:
        return tuple(range(model.n_layers))
    bad = [i for i in layers if i >= model.n_layers]
    if bad:
        raise ConfigError(f"{name}: layer {bad[0]} out of range: {model.name} has blocks 0..{model.n_layers - 1}")
    return tuple(sorted(layers))


def _pretrained_sae(cfg: RealConfig, side: Side, layer: int, spec: str, say: Callable[[str], None]) -> None:
    """Load the pretrained SAE of one layer (``spec`` with {layer} filled in); width checked."""
    from featgeom.real.saes import load_sae

    sae_spec = spec.format(layer=layer)
    say(f"SAE {sae_spec}")
    _use_sae(side, layer, load_sae(sae_spec, device=cfg.device), {"source": sae_spec})


def _trained_sae(cfg: RealConfig, side: Side, layer: int, store: Path, say: Callable[[str], None]) -> None:
    """Train (or reuse from the store) featgeom's SAE of one layer on its stored activations."""
    from featgeom.sae.train import train_on_activation_set

    say(f"training an SAE on {side.member(layer)} ({cfg.train.arch}, width {cfg.train.width})")
    trained = train_on_activation_set(side.acts, layer, cfg.train.sae_config(cfg.device), store)
    metrics = {k: v for k, v in trained.metrics.items() if isinstance(v, (int, float))}
    _use_sae(side, layer, trained.sae, {"source": f"trained: {trained.path}", **metrics})


def _use_sae(side: Side, layer: int, sae: Any, info: dict[str, Any]) -> None:
    """Record one layer's SAE after checking that it reads the hooked width."""
    from featgeom.compare import decoder_rows
    from featgeom.real.saes import check_sae_width

    check_sae_width(sae, side.model.d_model, f"sae_{side.label} (layer {layer})")
    side.saes[layer], side.sae_info[layer] = sae, info
    side.decoders[layer] = decoder_rows(sae, f"sae_{side.label}.W_dec").astype(np.float64)


def _encode_layer(cfg: RealConfig, side: Side, layer: int) -> None:
    """Latent activations, top tokens and the keep mask of one layer."""
    from featgeom.compare import encode
    from featgeom.device import compute_device
    from featgeom.real.filters import concept_keep
    from featgeom.real.tokens import top_activating_tokens

    sae = side.saes[layer]
    lat = encode(sae, side.acts.layer(layer), side.label, side.decoders[layer].shape[0],
                 device=compute_device(cfg.device, "device"))
    side.latents[layer] = lat
    side.top[layer] = top_activating_tokens(lat, side.acts.token_ids, k=cfg.top_tokens)
    n = lat.shape[1]
    side.keep[layer] = (concept_keep(side.top[layer], side.model.tokenizer) if cfg.non_concept_filter
                        else np.asarray(lat.getnnz(axis=0) > 0))
    if not side.keep[layer].any():
        raise DataError(f"{side.member(layer)}: none of the SAE's {n} latents is kept (all dead or non-concept)")


def null_blocks(cfg: RealConfig, acts: Any) -> int | np.ndarray:
    """What the repair null permutes whole: the kept tokens of each window ('window'; windows
    keep different numbers once separators are masked, so block lengths, one per window), or
    single tokens ('token', 1)."""
    if cfg.null_blocks == "token":
        return 1
    counts = np.bincount(acts.positions[:, 0], minlength=cfg.n_windows)
    return counts[counts > 0]


def compare_layers(cfg: RealConfig, a: Side, b: Side, la: int, lb: int) -> list[dict[str, Any]]:
    """Result rows of one layer pair: :func:`featgeom.compare.compare_latents` on the layers'
    latents (keep masks from the non-concept filter), plus latents kept and dead per side."""
    from featgeom.compare import compare_latents, result_values, value_rows
    from featgeom.device import compute_device

    result = compare_latents(
        a.latents[la], b.latents[lb], a.decoders[la], b.decoders[lb], modes=tuple(cfg.modes), n_perm=cfg.n_perm,
        seed=cfg.seed, nulls=tuple(cfg.nulls), min_corr=cfg.min_corr, keep_a=a.keep[la], keep_b=b.keep[lb],
        block_size=null_blocks(cfg, a.acts) if "repair" in cfg.nulls else 1,
        device=compute_device(cfg.device, "device"),
    )
    values = result_values(result.to_dict())
    values += [("", "kept_a", float(a.keep[la].sum()), None, None, None, "", "latents kept by the filter"),
               ("", "kept_b", float(b.keep[lb].sum()), None, None, None, "", "latents kept by the filter"),
               ("", "dead_a", float(result.dead[0]), None, None, None, "", ""),
               ("", "dead_b", float(result.dead[1]), None, None, None, "", "")]
    return value_rows(pair_context(cfg, a, b, la, lb), values)


def pair_context(cfg: RealConfig, a: Side, b: Side, la: int, lb: int) -> dict[str, Any]:
    """The condition columns of a layer pair's results rows (members '<model>:L<layer>')."""
    return {"analysis": ANALYSIS, "condition": f"{a.member(la)} vs {b.member(lb)}",
            "condition_json": canonical_json({"layer_a": la, "layer_b": lb}),
            "member_a": a.member(la), "member_b": b.member(lb), "seed_a": cfg.seed, "seed_b": cfg.seed,
            "replicate": 0}


def layer_grid(rows: list[dict[str, Any]], a: Side, b: Side, pairing: str, metric: str,
               column: str = "value", null_kind: str | None = None) -> np.ndarray:
    """(len(b.layers), len(a.layers)) matrix of one measured column (NaN where absent)."""
    grid = np.full((len(b.layers), len(a.layers)), np.nan)
    ia = {a.member(la): i for i, la in enumerate(a.layers)}
    ib = {b.member(lb): j for j, lb in enumerate(b.layers)}
    for r in rows:
        if (r["pairing"] == pairing and r["metric"] == metric and r["member_a"] in ia and r["member_b"] in ib
                and (null_kind is None or r["null_kind"] in (null_kind, ""))):
            value = r[column]
            grid[ib[r["member_b"]], ia[r["member_a"]]] = np.nan if value is None else value
    return grid


def best_pair(rows: list[dict[str, Any]], pairing: str, a: Side, b: Side) -> tuple[int, int] | None:
    """(layer_a, layer_b) with the highest SVCCA under ``pairing`` (None without rows)."""
    grid = layer_grid(rows, a, b, pairing, "svcca")
    if np.all(np.isnan(grid)):
        return None
    j, i = np.unravel_index(np.nanargmax(grid), grid.shape)
    return a.layers[i], b.layers[j]


def _best_pair_extras(cfg: RealConfig, a: Side, b: Side, best: tuple[int, int], out: Path,
                      say: Callable[[str], None]) -> tuple[list[dict[str, Any]], Path | None]:
    """Semantic subspaces and the viewer of the most similar layer pair, from its pairing
    (recomputed exactly as in its job: same latents, masks and procedure; no null needed)."""
    from featgeom.match import PermutedCorrelation
    from featgeom.stats import PairingProcedure

    la, lb = best
    lat_a, lat_b = a.latents[la], b.latents[lb]
    procedure = PairingProcedure(tuple(cfg.modes), min_corr=cfg.min_corr, keep_a=a.keep[la], keep_b=b.keep[lb])
    pairing = procedure.pairings(PermutedCorrelation(lat_a, lat_b).result())[cfg.modes[0]]
    rows: list[dict[str, Any]] = []
    if cfg.semantic:
        from featgeom.real.semantic import load_keywords, semantic_subspaces

        say(f"semantic subspaces of {a.member(la)} vs {b.member(lb)}")
        rows = semantic_subspaces(pairing, a.decoders[la], b.decoders[lb], a.top[la], b.top[lb], a.model.tokenizer,
                                  load_keywords(cfg.keywords), n_perm=cfg.semantic_perm, seed=cfg.seed,
                                  metrics=SEMANTIC_METRICS)
    viewer = None
    if cfg.viewer:
        from featgeom.real.tokens import token_text
        from featgeom.real.viewer import named_projection, write_viewer

        say("viewer")
        viewer = write_viewer(out / "viewer.html", a.decoders[la], b.decoders[lb], pairing.idx_a, pairing.idx_b,
                              pairing.score, _labels(a.top[la], a.model.tokenizer, token_text),
                              _labels(b.top[lb], b.model.tokenizer, token_text),
                              title=f"{a.member(la)} vs {b.member(lb)} ({cfg.modes[0]} pairs)",
                              names=(a.member(la), b.member(lb)), seed=cfg.seed,
                              projection=named_projection(cfg.viewer_projection))
    return rows, viewer


def semantic_rows(cfg: RealConfig, a: Side, b: Side, best: tuple[int, int],
                  categories: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results rows of the semantic subspaces: pairing 'semantic:<category>'; per metric one row per
    test (null_kind 'shuffle' = Test 1, 'subset' = Test 2) and the category's pair count."""
    from featgeom.compare import value_rows

    values = []
    for cat in categories:
        pairing = f"semantic:{cat['category']}"
        values.append((pairing, "n_pairs", float(cat["n_pairs"]), None, None, None, "", cat.get("reason") or ""))
        for metric, got in (cat.get("metrics") or {}).items():
            if "observed" in got:
                values += [(pairing, metric, got["observed"], got[f"{test}_p"], got[f"{test}_null_mean"],
                            got[f"{test}_null_std"], kind, "") for test, kind in (("test1", "shuffle"), ("test2", "subset"))]
    return value_rows(pair_context(cfg, a, b, *best), values)


def _labels(top: np.ndarray, tokenizer: Any, token_text: Callable[..., list[str]]) -> list[str]:
    """One label per latent: its top tokens, readable, joined by ' | ' ('(dead)' when it never fires)."""
    ids = top[top >= 0]
    texts = dict(zip(ids.tolist(), token_text(tokenizer, ids))) if ids.size else {}
    return [" | ".join(repr(texts[t]) for t in row if t >= 0) or "(dead)" for row in top.tolist()]


def spectra(cfg: RealConfig, a: Side, b: Side) -> list[dict[str, Any]]:
    """The superposition proxy of every hooked layer of both models and, for scale, of the
    members of a synthetic family (``cfg.synthetic_scale`` preset; rho_mm known)."""
    from featgeom.real.proxy import layer_spectra, member_spectra

    rows = [{"source": side.model.name, **row} for side in (a, b) for row in layer_spectra(side.acts)]
    if cfg.synthetic_scale is not None:
        rows += [{"source": f"synthetic {cfg.synthetic_scale}", **row}
                 for row in member_spectra(_scale_family(cfg.synthetic_scale), None, 8192, cfg.seed)]
    return rows


def _scale_family(preset: str) -> Any:
    """A family over world ``preset`` whose members span superposition: the base and variants
    projected to 75% and 50% of its hidden dim (same features, fewer dimensions)."""
    from featgeom.family import FamilyConfig, build_family
    from featgeom.world.config import preset as world_preset

    dim = world_preset(preset).hidden_dim
    variants = [{"name": f"d{d}", "hidden_dim": d} for d in (dim * 3 // 4, dim // 2)]
    return build_family(FamilyConfig.from_dict({"world": preset, "variants": variants}))
