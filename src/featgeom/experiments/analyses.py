"""The registry of analyses an experiment runs at each grid point (``analyses:`` in its YAML).

An :class:`Analysis` measures one SAE (``unit='sae'``) or two (``unit='pair'``) and returns
values (:data:`featgeom.compare.Value` tuples, or a mapping metric -> number). Pair analyses
say which SAEs meet (``pairs``): ``'members'``, the base's SAE against the grid point's variant's
SAE (the paper's question: do SAEs of two models agree?), or ``'within'``, two SAEs of the same
member that differ in one axis or in their seed (the floor any cross-model number must beat).

Built in:

* ``recovery`` (sae): the SAE against its member's ground truth on held-out samples (evaluation
  salt): MCC, F1, precision, recall, explained variance, L0, true L0, dead fraction, shrinkage,
  uniqueness (:func:`featgeom.sae.evaluate`), and the member's rho_mm; objectives
  (explained_variance, mcc) for the Pareto figure.
* ``cross_member`` (pair, members): :func:`featgeom.compare.compare` with ground truth, plus the
  members' rho_mm and shared fraction.
* ``coverage`` (sae): captured true features overall, per firing-rarity decile and per
  hierarchy depth (:func:`feature_coverage`); ``coverage_pairs`` (pair, within): overlap,
  unique and union of two SAEs' captured features (:func:`coverage_overlap`).
* ``basis_rotation`` (sae): task 5.2, the SAE and its data rotated together by the point's
  ``compare.rotation`` degrees (:func:`basis_rotation`).
* ``sae_pairs`` (pair, within): the same comparison between two SAEs of one member, plus their
  architecture agreement, complementary coverage and ensemble gain (:func:`coverage_values`).
* ``dead_latents`` (pair, within, ``across: sae.checkpoint``): task 6.1, one run's dead latents
  on held-out samples from a checkpoint to the next: DLR at each, stability DLS and recovery
  DLRec (:func:`dead_latent_steps`).
* ``feature_splitting`` (sae): task 3.2, superposition exploitation (latents needed per true
  feature) and the features the decoder splits over several latents (:func:`split_features`),
  with the most-split feature's decoder vectors in its plane (the report draws them).

:func:`register_analysis` adds one from Python; its function must be importable by the worker
processes (defined at module level), since jobs carry it by reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from featgeom.errors import ConfigError


@dataclass(frozen=True)
class AnalysisInput:
    """What an analysis gets: the family, the members and trained SAEs (``sae_b`` None for a
    one-SAE analysis; :class:`~featgeom.sae.artifact.TrainedSAE`), the comparison settings
    (samples, n_perm, modes, nulls, metrics, sample_seed), the device and the grid point
    (``condition``: axis -> value)."""

    family: Any
    member_a: str
    member_b: str
    sae_a: Any
    sae_b: Any
    seed_a: int
    seed_b: int
    samples: int
    sample_seed: int
    n_perm: int
    modes: tuple[str, ...]
    nulls: tuple[str, ...]
    metrics: tuple[str, ...] | None
    device: str = "cpu"
    condition: Mapping[str, Any] = field(default_factory=dict)


Result = list[tuple[str, str, float | None, float | None, float | None, float | None, str, str]] | Mapping[str, float]


@dataclass(frozen=True)
class Analysis:
    """A registered analysis: name, ``unit`` ('sae' or 'pair'), which SAEs a pair analysis meets
    (``pairs``: 'members' or 'within'; '' for 'sae'), ``run(AnalysisInput) -> values``, a one-line
    description, ``objectives`` (metrics the report draws a Pareto front of, all maximised) and
    ``tradeoff`` ((x, y) metrics, both maximised, whose front the report draws per value of a
    categorical axis over the other axes: precision against recall over L0, per architecture)."""

    name: str
    unit: str
    run: Callable[[AnalysisInput], Result]
    description: str
    pairs: str = ""
    objectives: tuple[str, ...] = ()
    tradeoff: tuple[str, ...] = ()
    across: str = ""  # the one axis a 'within' analysis must pair across (checked when the spec loads); '' any

    def __post_init__(self) -> None:
        if self.unit not in ("sae", "pair"):
            raise ConfigError(f"analysis {self.name}: unit must be 'sae' or 'pair', got {self.unit!r}")
        if (self.unit == "pair") != (self.pairs in ("members", "within")):
            raise ConfigError(f"analysis {self.name}: pairs must be 'members' or 'within' for a pair analysis "
                              f"and '' for an SAE analysis, got {self.pairs!r}")
        if len(self.tradeoff) not in (0, 2):
            raise ConfigError(f"analysis {self.name}: tradeoff names two metrics (x, y) or none, got {self.tradeoff!r}")


ANALYSES: dict[str, Analysis] = {}


def register_analysis(analysis: Analysis) -> Analysis:
    """Add ``analysis`` to the registry (ConfigError when the name is taken); returns it."""
    if analysis.name in ANALYSES:
        raise ConfigError(f"analysis: {analysis.name!r} is already registered")
    ANALYSES[analysis.name] = analysis
    return analysis


def values_of(result: Result) -> list[tuple[str, str, float | None, float | None, float | None, float | None, str, str]]:
    """An analysis's result as Value tuples (a mapping metric -> number becomes one row each,
    pairing '' and no null); ConfigError on anything else."""
    if isinstance(result, Mapping):
        return [("", str(k), None if v is None else float(v), None, None, None, "", "") for k, v in result.items()]
    if isinstance(result, list) and all(isinstance(v, tuple) and len(v) == 8 for v in result):
        return result
    raise ConfigError(f"analysis result: expected a mapping metric -> number or a list of 8-tuples, "
                      f"got {type(result).__name__}")


RECOVERY_KEYS = ("mcc", "f1", "f0_5", "f2", "precision", "recall", "explained_variance", "l0", "true_l0", "dead_fraction",
                 "shrinkage", "uniqueness")


def recovery(inp: AnalysisInput) -> Result:
    """The SAE's held-out evaluation against its member's true features (computed once, when it
    was trained, on samples of the evaluation salt; stored with the SAE), and the member's
    measured rho_mm (what a world axis such as hidden_dim moves) and ``mcc_chance``, the MCC of a
    random decoder of the same shape (:func:`chance_mcc`): in fewer dimensions random directions
    are closer to the features, so MCC's chance level rises with rho_mm."""
    metrics = inp.sae_a.metrics
    member = inp.family.member(inp.member_a)
    width = inp.sae_a.sae.W_dec.shape[0]
    return {**{key: metrics[key] for key in RECOVERY_KEYS if key in metrics}, "rho_mm": member.rho_mm,
            "mcc_chance": chance_mcc(width, member.feature_vectors, inp.seed_a)}


_CHANCE_MCC: dict[tuple[int, int, str], float] = {}  # (width, seed, sha256 of the features) -> chance MCC


def chance_mcc(width: int, features: Any, seed: int) -> float:
    """MCC (:func:`featgeom.metrics.mcc`) of ``width`` random Gaussian directions (seeded by
    ``seed``) against the true features (N, d): what an SAE that learned nothing scores. Kept per
    worker process for each (width, features, seed), so the checkpoints, the architectures of one
    width and the analyses of a member's SAEs of one seed share one Hungarian matching (~1.4 s at
    640 x 512)."""
    import hashlib

    import numpy as np

    from featgeom.metrics import mcc

    feat = np.ascontiguousarray(features, dtype=np.float64)
    key = (int(width), int(seed), hashlib.sha256(feat.tobytes() + repr(feat.shape).encode()).hexdigest())
    if key not in _CHANCE_MCC:
        rng = np.random.default_rng(seed)
        _CHANCE_MCC[key] = mcc(rng.standard_normal((width, feat.shape[1])), feat)
    return _CHANCE_MCC[key]


def compare_pair(inp: AnalysisInput) -> Result:
    """``compare`` of the two SAEs on shared inputs of their members, with ground truth; plus both
    members' rho_mm and the fraction of B's features shared with A."""
    from featgeom.compare import GroundTruth, compare, result_values
    from featgeom.device import compute_device

    family = inp.family
    members = list(dict.fromkeys([inp.member_a, inp.member_b]))
    batch = family.sample(inp.samples, seed=inp.sample_seed, with_features=True, members=members)
    result = compare(inp.sae_a.sae, inp.sae_b.sae, batch.hidden[inp.member_a], batch.hidden[inp.member_b],
                     modes=inp.modes, n_perm=inp.n_perm, seed=inp.seed_a, nulls=inp.nulls,
                     device=compute_device(inp.device, "device"),
                     ground_truth=GroundTruth.from_family(family, inp.member_a, inp.member_b, batch.features),
                     metrics=inp.metrics)
    values = result_values(result.to_dict())
    shared = shared_fraction(family, inp.member_a, inp.member_b)
    values += [("", "rho_mm_a", family.member(inp.member_a).rho_mm, None, None, None, "", ""),
               ("", "rho_mm_b", family.member(inp.member_b).rho_mm, None, None, None, "", ""),
               ("", "shared_fraction", shared, None, None, None, "", "")]
    if inp.member_a == inp.member_b:
        values += coverage_values(inp)
    return values


def coverage_values(inp: AnalysisInput) -> list[tuple[str, str, float | None, float | None, float | None, float | None, str, str]]:
    """Two SAEs of one member against its true features (plan task 2.1; a feature counts as
    recovered by an SAE when some decoder row has |cos| >= 0.9 with it): architecture agreement
    (Jaccard index of the recovered sets), complementary coverage (found by one, not both),
    ensemble gain (the union's coverage beyond the better one's); and decoder_mcc, the MCC of the
    two decoders against each other (mean |cos| over their optimal one-to-one matching; task 9.1's
    between-seed MCC)."""
    from featgeom.compare import decoder_rows
    from featgeom.metrics import architecture_agreement, complementary_coverage, ensemble_gain, mcc

    features = inp.family.member(inp.member_a).feature_vectors
    decoders = [decoder_rows(inp.sae_a.sae), decoder_rows(inp.sae_b.sae)]
    agreement = architecture_agreement(*decoders, features)
    note = "neither SAE recovers any feature" if agreement != agreement else ""
    return [("", "architecture_agreement", None if note else agreement, None, None, None, "", note),
            ("", "complementary_coverage", complementary_coverage(decoders, features), None, None, None, "", ""),
            ("", "ensemble_gain", ensemble_gain(decoders, features), None, None, None, "", ""),
            ("", "decoder_mcc", mcc(*decoders), None, None, None, "", "")]


def shared_fraction(family: Any, member_a: str, member_b: str) -> float:
    """Fraction of B's features that are features of A (1 for one member with itself)."""
    if member_a == member_b:
        return 1.0
    if member_a != "base":
        raise ConfigError(f"shared_fraction: known against the base only, not {member_a!r}")
    return family.shared_with_base(member_b) / family.member(member_b).num_features


CAPTURE_COS = 0.5  # a true feature is captured when some decoder row has |cos| >= this (plan task 6.5)


def feature_coverage(inp: AnalysisInput) -> Result:
    """Which true features the SAE captures (some decoder row with |cos| >= CAPTURE_COS, the
    plan's "MCC > 0.5" of task 6.5), overall, per firing-rarity decile (``coverage_rarity_d1`` =
    the rarest tenth of the member's features by firing probability ... ``d10`` the most
    frequent) and per hierarchy depth (``coverage_depth_0`` = roots and features outside the
    hierarchy, ...)."""
    from featgeom.compare import decoder_rows
    from featgeom.metrics import coverage_by_depth, coverage_by_rarity, covered
    from featgeom.world.build import hierarchy_depth

    member = inp.family.member(inp.member_a)
    hit = covered(decoder_rows(inp.sae_a.sae), member.feature_vectors, threshold=CAPTURE_COS)
    rarity = coverage_by_rarity(member.firing_probability, hit)
    depth = coverage_by_depth(hierarchy_depth(member.parent), hit)
    out = {"coverage": float(hit.mean())}
    out.update({f"coverage_rarity_d{int(g) + 1}": float(f) for g, f in zip(rarity.group, rarity.fraction)})
    out.update({f"coverage_depth_{int(g)}": float(f) for g, f in zip(depth.group, depth.fraction)})
    return out


def coverage_overlap(inp: AnalysisInput) -> Result:
    """Two SAEs of one member (plan task 6.2): fractions of the true features both capture
    (``overlap``, CO), only A (``unique_a``), only B (``unique_b``) and either (``union``), capture
    as in :func:`feature_coverage`."""
    from featgeom.compare import decoder_rows
    from featgeom.metrics import pairwise_coverage

    member = inp.family.member(inp.member_a)
    decoders = [decoder_rows(inp.sae_a.sae), decoder_rows(inp.sae_b.sae)]
    (counts,) = pairwise_coverage(decoders, member.feature_vectors, threshold=CAPTURE_COS)
    return {key: counts[key] / counts["n_features"] for key in ("overlap", "unique_a", "unique_b", "union")}


ROTATED_PARAMETERS = ("W_enc", "W_dec", "b_dec")  # the SAE parameters that live in the model's space


def rotated_sae(sae: Any, rotation: Any) -> Any:
    """A copy of ``sae`` that computes on rotated inputs x' = x Q^T (Q orthogonal, (d, d)) exactly
    what ``sae`` computes on x: W_enc' = Q W_enc, W_dec' = W_dec Q^T, b_dec' = b_dec Q^T, so
    (x' - b_dec') W_enc' = (x - b_dec) W_enc and decode' = decode Q^T. ConfigError when another
    parameter has the model's dimension (a layout this rotation does not know)."""
    import copy

    import torch

    d = rotation.shape[0]
    out = copy.deepcopy(sae)
    unknown = [n for n, p in out.named_parameters() if n not in ROTATED_PARAMETERS and d in tuple(p.shape)]
    if unknown:
        raise ConfigError(f"basis_rotation: parameter {unknown[0]} of shape {tuple(dict(out.named_parameters())[unknown[0]].shape)} "
                          f"has the model's dimension {d}; only {', '.join(ROTATED_PARAMETERS)} can be rotated")
    q = torch.as_tensor(rotation, dtype=out.W_dec.dtype, device=out.W_dec.device)
    with torch.no_grad():
        out.W_enc.copy_(q @ out.W_enc)
        out.W_dec.copy_(out.W_dec @ q.T)
        out.b_dec.copy_(out.b_dec @ q.T)
    return out


def basis_rotation(inp: AnalysisInput) -> Result:
    """Task 5.2, basis dependence: the SAE, its encoder, decoder and data rotated together by an
    orthogonal map Q that moves every vector by the grid point's ``compare.rotation`` degrees
    (:func:`featgeom.family.construct.rotation_matrix`, seeded by the SAE's seed): the rotated SAE
    computes the same latents on the rotated data (``max_latent_change``), so its function is
    unchanged, but its decoder now points elsewhere in the member's basis. Rows: the rotated SAE's
    ground-truth metrics in that basis (mcc, precision, recall, f1, on ``samples`` held-out
    inputs) and every similarity metric between the SAE (on x) and its rotated copy (on x Q^T),
    with the nulls."""
    import numpy as np
    import torch

    from featgeom.compare import compare, result_values
    from featgeom.device import compute_device
    from featgeom.family.construct import rotation_matrix
    from featgeom.sae.evaluate import evaluate, heldout_batches

    angle = float(inp.condition.get("compare.rotation", 0.0))
    member = inp.family.member(inp.member_a)
    q = rotation_matrix(member.hidden_dim, angle, np.random.default_rng(inp.seed_a))
    sae = inp.sae_a.sae
    turned = rotated_sae(sae, q)
    rotated_batches = ((hidden @ q.T, acts) for hidden, acts in
                       heldout_batches(inp.family, inp.member_a, inp.samples, inp.seed_a))
    truth = evaluate(turned, member.feature_vectors, rotated_batches, member.name)
    x = inp.family.sample(inp.samples, seed=inp.sample_seed, members=[inp.member_a]).hidden[inp.member_a]
    x_rot = (x @ q.T).astype(np.float32)
    with torch.no_grad():
        z, z_rot = sae.encode(torch.from_numpy(x[:1024])), turned.encode(torch.from_numpy(x_rot[:1024]))
    result = compare(sae, turned, x, x_rot, modes=inp.modes, n_perm=inp.n_perm, seed=inp.seed_a, nulls=inp.nulls,
                     device=compute_device(inp.device, "device"), metrics=inp.metrics)
    values = result_values(result.to_dict())
    values += [("", key, truth[key], None, None, None, "", "") for key in ("mcc", "precision", "recall", "f1")]
    values.append(("", "max_latent_change", float((z - z_rot).abs().max()), None, None, None, "", ""))
    return values


def analysis_table() -> list[tuple[str, str, str]]:
    """(name, unit ('sae' or 'pair/<pairs>'), description) of every registered analysis."""
    return [(name, a.unit if a.unit == "sae" else f"pair/{a.pairs}", a.description) for name, a in ANALYSES.items()]


register_analysis(Analysis("recovery", "sae", recovery, "each SAE against its member's true features (held out)",
                           objectives=("explained_variance", "mcc"), tradeoff=("recall", "precision")))
register_analysis(Analysis("cross_member", "pair", compare_pair,
                           "base SAE vs the grid point's variant SAE: pairing, similarity + nulls, ground truth",
                           pairs="members"))
register_analysis(Analysis("coverage", "sae", feature_coverage,
                           "which true features each SAE captures, by firing-rarity decile and hierarchy depth"))
register_analysis(Analysis("coverage_pairs", "pair", coverage_overlap,
                           "true features two SAEs of one member capture: both, only one, either",
                           pairs="within"))
register_analysis(Analysis("basis_rotation", "sae", basis_rotation,
                           "an SAE with its encoder, decoder and data rotated by compare.rotation degrees: "
                           "ground-truth metrics move, similarities to the unrotated SAE should not"))
register_analysis(Analysis("sae_pairs", "pair", compare_pair,
                           "two SAEs of one member differing in one axis (or seed): the same comparison",
                           pairs="within"))


# --- dead latents across training checkpoints (plan task 6.1) ---

def dead_latent_masks(inp: AnalysisInput) -> Any:
    """(2, W) bool: row 0 = latents of SAE A, row 1 = latents of SAE B that never fire (z = 0) on
    the held-out samples of A's evaluation (the evaluation salt's stream with seed
    :data:`featgeom.sae.train.EVAL_SEED`, as many samples as A's stored evaluation used), so each
    row's count is the ``dead_latents`` that evaluation recorded (``recovery``'s dead_fraction x W)."""
    import numpy as np
    import torch

    from featgeom.metrics.detection import dead_latents
    from featgeom.sae.evaluate import heldout_batches
    from featgeom.sae.train import EVAL_SEED

    saes = (inp.sae_a.sae, inp.sae_b.sae)
    widths = {int(sae.W_dec.shape[0]) for sae in saes}
    if len(widths) != 1:
        raise ConfigError(f"dead_latents: the two SAEs have different widths {sorted(widths)}; compare one run's "
                          "checkpoints (across: sae.checkpoint)")
    masks = np.ones((2, widths.pop()), dtype=bool)
    with torch.no_grad():
        for hidden, _ in heldout_batches(inp.family, inp.member_a, int(inp.sae_a.metrics["num_samples"]), EVAL_SEED):
            x = torch.from_numpy(hidden)
            for row, sae in enumerate(saes):
                masks[row] &= dead_latents(sae.encode(x).numpy())
    return masks


def dead_latent_steps(inp: AnalysisInput) -> Result:
    """Task 6.1, dead latents from one checkpoint of a run to the next (``across: sae.checkpoint``:
    SAE A = the run at c_k, SAE B = the same run at c_{k+1}). With D_a, D_b the sets of latents dead
    on the held-out samples (:func:`dead_latent_masks`) and W the width:

    * ``dead_fraction_a`` = |D_a| / W, ``dead_fraction_b`` = |D_b| / W (DLR at each checkpoint);
    * ``dead_latent_stability`` (DLS) = |D_a & D_b| / |D_b| (of the latents dead at c_{k+1}, the
      share already dead at c_k; None, with a note, when D_b is empty);
    * ``dead_latent_recovery`` (DLRec) = |D_a - D_b| / |D_a| (of the latents dead at c_k, the share
      alive at c_{k+1}; None when D_a is empty);
    * ``dead_stayed`` = |D_a & D_b|, ``dead_revived`` = |D_a - D_b|, ``dead_died`` = |D_b - D_a|
      (:func:`featgeom.metrics.dead.dead_latent_transitions`)."""
    from featgeom.metrics.dead import dead_latent_transitions

    if not isinstance(inp.condition.get("sae.checkpoint"), list):
        raise ConfigError("dead_latents: compares one run at two checkpoints; use it with across: sae.checkpoint")
    masks = dead_latent_masks(inp)
    t = dead_latent_transitions(masks)
    width = masks.shape[1]
    values: list[tuple[str, str, float | None, float | None, float | None, float | None, str, str]] = [
        ("", "dead_fraction_a", float(t.dead[0]) / width, None, None, None, "", ""),
        ("", "dead_fraction_b", float(t.dead[1]) / width, None, None, None, "", "")]
    for metric, ratio, empty in (("dead_latent_stability", t.stability[0], "no latent is dead at the later checkpoint"),
                                 ("dead_latent_recovery", t.recovery[0], "no latent is dead at the earlier checkpoint")):
        defined = bool(ratio == ratio)
        values.append(("", metric, float(ratio) if defined else None, None, None, None, "", "" if defined else empty))
    values += [("", f"dead_{kind}", float(count[0]), None, None, None, "", "")
               for kind, count in (("stayed", t.stayed), ("revived", t.revived), ("died", t.died))]
    return values


register_analysis(Analysis("dead_latents", "pair", dead_latent_steps,
                           "dead latents of one run from a checkpoint to the next (across sae.checkpoint): "
                           "DLR at each, stability DLS and recovery DLRec", pairs="within", across="sae.checkpoint"))


# --- feature splitting and superposition exploitation (plan task 3.2) ---

SPLIT_TARGET = 0.9  # superposition_exploitation's target: cos(feature, its projection on the latents' span)
SPLIT_COS = 0.5  # |cos| with the feature that a latent of its split must have
SPLIT_MAX_LATENTS = 10  # most latents a feature's reconstruction may use (exploitation), and the figure shows


@dataclass(frozen=True)
class Splitting:
    """How an SAE's decoder splits the true features (:func:`split_features`).

    own (N,) int64: latents each feature owns; joint (N,) float: cos of the feature with its
    projection on the span of its own latents (0 without any); split (N,) bool; most_split: index
    of the most-split feature (-1 when none is split); latents (k,) int64: its own latents in
    decreasing |cos| (at most max_latents of them); cos (k,): their signed cosines with the
    feature; perp (k,): their coordinate along the residual direction (the figure's plane: x =
    cos, y = perp)."""

    own: Any
    joint: Any
    split: Any
    most_split: int
    latents: Any
    cos: Any
    perp: Any


def split_features(decoder: Any, features: Any, min_cos: float = SPLIT_COS,
                   max_latents: int = SPLIT_MAX_LATENTS, target: float = SPLIT_TARGET) -> Splitting:
    """Which true features the decoder (n, d) splits over several latents, features (N, d).

    A latent l belongs to the feature it is most aligned with, owner(l) = argmax_f |cos(l, f)|,
    when that |cos| >= ``min_cos``; own[f] = #{l : owner(l) = f}. Feature f is split when it owns
    m >= 2 latents that together reconstruct it (joint[f] = ||P f|| / ||f|| >= ``target``, P the
    least-squares projection on the span of its own latents) while no one of them alone does
    (best[f] = max_l |cos(l, f)| < ``target``): the plan's "collectively reconstruct better but
    individually correspond worse" (task 3.2). A feature one latent already reconstructs is not
    split, however many near-copies of it there are. The most-split feature has the largest gain
    joint - best (ties: more latents owned, then the lowest index). Its plane: u1 = f / ||f|| and u2 = the top right
    singular vector of its (first max_latents, by |cos|) latents' parts orthogonal to f,
    R_i = l_i - (l_i . u1) u1 for the unit decoder rows l_i (the direction they spread along),
    signed so that the first latent has perp >= 0; each latent's coordinates are (l_i . u1, l_i . u2)."""
    import numpy as np

    from featgeom.formulas import unit_rows

    dec = np.asarray(decoder, dtype=np.float64)
    feat = np.asarray(features, dtype=np.float64)
    unit_dec, unit_feat = unit_rows(dec, zero_rows="keep"), unit_rows(feat, "features")
    cos = unit_feat @ unit_dec.T  # (N, n)
    owner = np.argmax(np.abs(cos), axis=0)  # (n,)
    owned = np.abs(cos[owner, np.arange(dec.shape[0])]) >= min_cos
    own = np.bincount(owner[owned], minlength=feat.shape[0]).astype(np.int64)
    joint, best = np.zeros(feat.shape[0]), np.zeros(feat.shape[0])
    for f in np.flatnonzero(own):
        rows = unit_dec[owned & (owner == f)]
        coef = np.linalg.lstsq(rows.T, unit_feat[f], rcond=None)[0]
        joint[f], best[f] = np.linalg.norm(rows.T @ coef), np.abs(rows @ unit_feat[f]).max()
    split = (own >= 2) & (joint >= target) & (best < target)
    if not split.any():
        empty = np.zeros(0)
        return Splitting(own, joint, split, -1, np.zeros(0, dtype=np.int64), empty, empty)
    candidates = np.flatnonzero(split)
    f = int(candidates[np.lexsort((candidates, -own[candidates], -(joint - best)[candidates]))[0]])
    mine = np.flatnonzero(owned & (owner == f))
    latents = mine[np.argsort(-np.abs(cos[f, mine]), kind="stable")][:max_latents]
    along = unit_dec[latents] @ unit_feat[f]
    residual = unit_dec[latents] - along[:, None] * unit_feat[f]
    perp = residual @ np.linalg.svd(residual, full_matrices=False)[2][0]
    return Splitting(own, joint, split, f, latents.astype(np.int64), along, -perp if perp[0] < 0 else perp)


def feature_splitting(inp: AnalysisInput) -> Result:
    """Task 3.2, how the SAE uses superposition: ``exploitation``
    (:func:`featgeom.metrics.superposition_exploitation`, target SPLIT_TARGET: mean latents needed
    per reconstructed feature; none, with a note, when no feature is reconstructed within
    SPLIT_MAX_LATENTS latents, e.g. an SAE at chance); ``reconstructed_fraction``, the features
    that many latents reconstruct to cos SPLIT_TARGET; ``split_fraction``, the features split
    (:func:`split_features`), and ``split_fraction_chance``, that of a random decoder
    (:func:`chance_split_fraction`: in few dimensions random latents align with some feature); the most-split feature (``most_split_feature``, the number of latents
    it owns ``most_split_latents``, their joint reconstruction cos ``most_split_joint_cos``) with its
    first k <= SPLIT_MAX_LATENTS latents' cosines ``split_cos_1..k`` and residual-direction
    coordinates ``split_perp_1..k`` (the report's decoder-vector figure); the member's
    ``hidden_dim`` and ``rho_mm``."""
    from featgeom.compare import decoder_rows
    from featgeom.errors import DataError
    from featgeom.metrics import latents_per_feature, superposition_exploitation

    member = inp.family.member(inp.member_a)
    decoder, features = decoder_rows(inp.sae_a.sae), member.feature_vectors
    found = split_features(decoder, features)
    try:
        exploitation, note = superposition_exploitation(decoder, features, target=SPLIT_TARGET,
                                                        max_latents=SPLIT_MAX_LATENTS), ""
    except DataError as exc:
        exploitation, note = None, str(exc)
    reached = latents_per_feature(decoder, features, target=SPLIT_TARGET, max_latents=SPLIT_MAX_LATENTS) > 0
    numbers = {"reconstructed_fraction": reached.mean(), "split_fraction": found.split.mean(),
               "split_fraction_chance": chance_split_fraction(decoder.shape[0], features, inp.seed_a),
               "hidden_dim": member.hidden_dim, "rho_mm": member.rho_mm}
    if found.most_split >= 0:
        f = found.most_split
        numbers.update({"most_split_feature": f, "most_split_latents": found.own[f],
                        "most_split_joint_cos": found.joint[f]})
        for i, (c, p) in enumerate(zip(found.cos, found.perp), start=1):
            numbers.update({f"split_cos_{i}": c, f"split_perp_{i}": p})
    return [("", "exploitation", exploitation, None, None, None, "", note)] + \
        [("", key, float(value), None, None, None, "", "") for key, value in numbers.items()]


def chance_split_fraction(width: int, features: Any, seed: int) -> float:
    """``split_fraction`` (:func:`split_features`) of ``width`` random Gaussian directions (seeded
    by ``seed``, as :func:`chance_mcc`) against the true features (N, d)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return float(split_features(rng.standard_normal((width, np.asarray(features).shape[1])), features).split.mean())


register_analysis(Analysis("feature_splitting", "sae", feature_splitting,
                           "superposition exploitation (latents per true feature) and the true features "
                           "an SAE splits over several latents, with the most-split one's decoder vectors"))
