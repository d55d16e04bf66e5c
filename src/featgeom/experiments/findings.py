"""Study findings: named functions over a run's result rows that test a hypothesis of the plan.

An experiment lists them under ``findings:``; the report runs each on the run's rows and shows
its sentences (computed from the numbers, never written by hand) and its numbers. A finding is
``run(rows) -> Finding`` over :data:`featgeom.store.results.RESULT_COLUMNS` rows; it needs no
training or comparison of its own, so a study is one YAML file plus, at most, one finding.

Built in:

* ``superposition_cost`` (task 3.1): per architecture, the least-squares slope of MCC on the
  member's rho_mm over every (world, seed) SAE, as MCC change per +0.05 rho_mm with a 95%
  interval (t distribution, n - 2 degrees of freedom), held against the plan's "each +0.05
  rho_mm costs about 0.08 MCC", and the same slope of MCC minus a random decoder's MCC (the
  chance level rises as the dimension falls); an architecture whose MCC is on average within
  AT_CHANCE of chance did not learn and is named as such, not fitted; decomposition diversity (std over seeds of MCC, ddof 1) per world;
  the architecture-specific response (slope minus the mean slope).
* ``rare_feature_capture`` (task 6.5): the rarest decile's capture rate per architecture
  against the plan's "< 50%".
* ``decomposition_ambiguity`` (task 9.1): decomposition diversity against rho_mm (Spearman), and
  the between-seed decoder MCC (``sae_pairs`` across seeds) at the lowest rho_mm reached, held
  against the plan's "> 0.95 when rho_mm < 0.03".
* ``weak_strong_universality`` (task 2.4): cross-architecture SVCCA and decoder MCC at every
  training checkpoint, held against "weak universality emerges early and stays stable, strong
  universality never fully develops" (thresholds in its docstring).
* ``dead_latent_dynamics`` (task 6.1): dead-latent rate per checkpoint, stability (DLS) and
  recovery (DLRec) per architecture and revival method, and the feature discovery gap.
* ``mp_exploitation`` (task 3.2): per world, matching pursuit against standard L1: higher
  explained variance, lower MCC (only where L1 learned, i.e. is above a random decoder's MCC) and
  higher superposition exploitation, each held or not.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from featgeom.errors import ConfigError, DataError


@dataclass
class Finding:
    """What a study finding concluded: sentences for the report and the numbers behind them."""

    name: str
    sentences: list[str]
    numbers: dict[str, Any] = field(default_factory=dict)


FINDINGS: dict[str, Callable[[list[dict[str, Any]]], Finding]] = {}


def register_finding(name: str) -> Callable[[Callable[[list[dict[str, Any]]], Finding]], Callable[[list[dict[str, Any]]], Finding]]:
    """Decorator adding ``run(rows) -> Finding`` to FINDINGS under ``name`` (ConfigError when taken)."""
    def add(func: Callable[[list[dict[str, Any]]], Finding]) -> Callable[[list[dict[str, Any]]], Finding]:
        if name in FINDINGS:
            raise ConfigError(f"finding: {name!r} is already registered")
        FINDINGS[name] = func
        return func
    return add


AT_CHANCE = 0.05  # mean MCC above a random decoder's below which an architecture counts as not learned


def _held(interval: tuple[float, ...]) -> str:
    """'consistent with' when the 95% interval covers the plan's -0.08 per +0.05 rho_mm."""
    return "consistent with" if interval[1] <= -0.08 <= interval[2] else "not consistent with"


def recovery_table(rows: list[dict[str, Any]]) -> dict[tuple[str, str, int], dict[str, float]]:
    """(condition_json without the arch, arch, seed) -> metric -> value of the recovery rows."""
    table: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["analysis"] != "recovery" or r["value"] is None:
            continue
        cond = json.loads(r["condition_json"])
        arch = str(cond.pop("sae.arch", "default"))
        table[json.dumps(cond, sort_keys=True), arch, r["seed_a"]][r["metric"]] = r["value"]
    return table


def slope_interval(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Least-squares slope b of y on x and its 95% interval b ± t_{0.975, n-2} se(b), with
    se(b) = sqrt(sum r^2 / (n - 2) / sum (x - mean x)^2); DataError for < 3 points or one x."""
    from scipy import stats

    if x.size < 3 or np.ptp(x) == 0:
        raise DataError(f"slope: needs >= 3 points at >= 2 distinct x, got {x.size} points")
    fit = stats.linregress(x, y)
    half = stats.t.ppf(0.975, x.size - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


@register_finding("superposition_cost")
def superposition_cost(rows: list[dict[str, Any]]) -> Finding:
    """Task 3.1 (see module docstring)."""
    from featgeom.metrics import architecture_specific_response, decomposition_diversity

    table = recovery_table(rows)
    by_arch: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    seeds: dict[tuple[str, float], list[float]] = defaultdict(list)
    for (_, arch, _), m in table.items():
        if "mcc" in m and "rho_mm" in m:
            by_arch[arch].append((m["rho_mm"], m["mcc"], m["mcc"] - m.get("mcc_chance", 0.0)))
            seeds[arch, m["rho_mm"]].append(m["mcc"])
    if not by_arch:
        raise DataError("superposition_cost: no recovery rows with mcc and rho_mm")
    sentences, numbers = [], {"per_0.05_rho_mm": {}, "above_chance_per_0.05_rho_mm": {}, "diversity": {},
                              "at_chance": []}
    for arch, points in sorted(by_arch.items()):
        x, y, above = np.array(points).T
        cost = tuple(0.05 * v for v in slope_interval(x, y))
        gain = tuple(0.05 * v for v in slope_interval(x, above))
        numbers["per_0.05_rho_mm"][arch], numbers["above_chance_per_0.05_rho_mm"][arch] = cost, gain
        if float(np.mean(above)) < AT_CHANCE:
            numbers["at_chance"].append(arch)
            sentences.append(f"{arch}: MCC within {AT_CHANCE} of a random decoder's on average ({np.mean(y):.3f} vs "
                             f"{np.mean(y - above):.3f}): it did not learn the features in this budget, so its slope "
                             "says nothing about superposition.")
            continue
        sentences.append(f"{arch}: each +0.05 rho_mm changes MCC by {cost[0]:+.3f} (95% interval "
                         f"{cost[1]:+.3f} to {cost[2]:+.3f}; rho_mm {x.min():.3f}-{x.max():.3f}, {x.size} SAEs), "
                         f"{_held(cost)} the plan's -0.08; MCC above a random decoder's changes by {gain[0]:+.3f} "
                         f"({gain[1]:+.3f} to {gain[2]:+.3f}), {_held(gain)} it.")
    for (arch, rho), values in sorted(seeds.items()):
        if len(values) >= 2:
            numbers["diversity"].setdefault(arch, {})[rho] = decomposition_diversity(values)
    if numbers["diversity"]:
        worst = max(((a, r, d) for a, per in numbers["diversity"].items() for r, d in per.items()), key=lambda t: t[2])
        sentences.append(f"Decomposition diversity (std of MCC over seeds) is largest for {worst[0]} at rho_mm "
                         f"{worst[1]:.3f} ({worst[2]:.3f}).")
    learned = {a: pts for a, pts in by_arch.items() if a not in numbers["at_chance"]}
    if len(learned) >= 2:
        archs = [a for a, pts in learned.items() for _ in pts]
        rho = [p[0] for pts in learned.values() for p in pts]
        mcc = [p[1] for pts in learned.values() for p in pts]
        try:
            response = architecture_specific_response(archs, rho, mcc)
        except DataError as exc:  # an architecture missing at a level: say so instead of a number
            sentences.append(f"Architecture-specific response not computed: {exc}.")
        else:
            order = np.argsort(response.slope_response)[::-1]
            best, worst_arch = response.architectures[order[0]], response.architectures[order[-1]]
            numbers["slope_response"] = dict(zip(map(str, response.architectures), map(float, response.slope_response)))
            sentences.append(f"Architecture-specific response (architectures that learned): {best} loses least MCC with superposition "
                             f"(slope {response.slope_response[order[0]]:+.3f} vs the mean), {worst_arch} most "
                             f"({response.slope_response[order[-1]]:+.3f}).")
    return Finding("superposition_cost", sentences, numbers)


@register_finding("decomposition_ambiguity")
def decomposition_ambiguity(rows: list[dict[str, Any]]) -> Finding:
    """Task 9.1 (see module docstring)."""
    from scipy import stats

    from featgeom.metrics import decomposition_diversity

    table = recovery_table(rows)
    per_world: dict[float, list[float]] = defaultdict(list)
    for m in table.values():
        if "mcc" in m and "rho_mm" in m:
            per_world[m["rho_mm"]].append(m["mcc"])
    worlds = sorted(r for r, v in per_world.items() if len(v) >= 2)
    if len(worlds) < 2:
        raise DataError("decomposition_ambiguity: needs >= 2 worlds with >= 2 seeds each")
    diversity = [decomposition_diversity(per_world[r]) for r in worlds]
    rho_s = float(stats.spearmanr(worlds, diversity).statistic)
    sentences = [f"Decomposition diversity (std of MCC over {min(len(per_world[r]) for r in worlds)}+ seeds) goes "
                 f"{diversity[0]:.4f} at rho_mm {worlds[0]:.3f} to {diversity[-1]:.4f} at {worlds[-1]:.3f} "
                 f"(Spearman {rho_s:+.2f} over {len(worlds)} worlds)."]
    between = _between_seed_mcc(rows)
    numbers: dict[str, Any] = {"rho_mm": worlds, "diversity": diversity, "spearman": rho_s, "between_seed_mcc": between}
    if between:
        low = min(between)
        values = between[low]
        held = "above" if min(values) > 0.95 else "not above"
        sentences.append(f"Between-seed decoder MCC at the lowest rho_mm reached ({low:.3f}; the plan's condition is "
                         f"rho_mm < 0.03): mean {np.mean(values):.3f}, min {min(values):.3f} over {len(values)} seed "
                         f"pairs, {held} the plan's 0.95.")
    return Finding("decomposition_ambiguity", sentences, numbers)


def _between_seed_mcc(rows: list[dict[str, Any]]) -> dict[float, list[float]]:
    """rho_mm of the member -> decoder MCC of every sae_pairs comparison on it."""
    rho: dict[tuple[str, int, int, int], float] = {}
    mccs: dict[tuple[str, int, int, int], float] = {}
    for r in rows:
        if r["analysis"] != "sae_pairs" or r["value"] is None:
            continue
        key = (r["condition_json"], r["replicate"], r["seed_a"], r["seed_b"])
        if r["metric"] == "rho_mm_a":
            rho[key] = r["value"]
        elif r["metric"] == "decoder_mcc":
            mccs[key] = r["value"]
    out: dict[float, list[float]] = defaultdict(list)
    for key, value in mccs.items():
        if key in rho:
            out[rho[key]].append(value)
    return dict(out)


@register_finding("rare_feature_capture")
def rare_feature_capture(rows: list[dict[str, Any]]) -> Finding:
    """Task 6.5: per architecture, the share of the rarest tenth of true features its SAEs
    capture (``coverage`` rows, mean over seeds) against the plan's "rare features are captured
    < 50% of the time", and how capture moves from the rarest to the most frequent decile."""
    per_arch: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["analysis"] == "coverage" and r["metric"].startswith("coverage_rarity_d") and r["value"] is not None:
            arch = str(json.loads(r["condition_json"]).get("sae.arch", "default"))
            per_arch[arch][int(r["metric"].removeprefix("coverage_rarity_d"))].append(r["value"])
    if not per_arch:
        raise DataError("rare_feature_capture: no coverage rows (run the 'coverage' analysis)")
    sentences, numbers = [], {}
    for arch, deciles in sorted(per_arch.items()):
        means = {d: float(np.mean(v)) for d, v in sorted(deciles.items())}
        numbers[arch] = means
        rarest, frequent = means[min(means)], means[max(means)]
        held = "below" if rarest < 0.5 else "not below"
        sentences.append(f"{arch}: rarest decile captured {rarest:.0%}, most frequent {frequent:.0%} ({held} "
                         "the plan's 50%).")
    held_count = sum(numbers[a][min(numbers[a])] < 0.5 for a in numbers)
    sentences.append(f"The plan's 'rare features are captured < 50% of the time' holds for {held_count} of "
                     f"{len(numbers)} architectures.")
    return Finding("rare_feature_capture", sentences, numbers)


def run_findings(names: list[str], rows: list[dict[str, Any]]) -> list[Finding]:
    """Each named finding on ``rows``; a finding the rows cannot support says why in one sentence."""
    out = []
    for name in names:
        try:
            out.append(FINDINGS[name](rows))
        except DataError as exc:
            out.append(Finding(name, [f"not computed: {exc}"]))
    return out


# --- training dynamics: universality and dead latents over checkpoints (plan tasks 2.4, 6.1) ---

WEAK_EARLY_SHARE = 0.9  # weak universality emerges early: at the first checkpoint >= this share of its final value
WEAK_STABLE_DROP = 0.05  # ... and stays stable: never more than this below the highest value reached before
STRONG_FULL = 0.9  # strong universality fully develops once cross-architecture decoder MCC reaches this
DIE_EARLY = 0.8  # dead latents die early: DLS of the last checkpoint step >= this


def _pair_values(rows: list[dict[str, Any]], metric: str, pairing: str) -> dict[float, dict[bool, list[float]]]:
    """checkpoint -> (the two architectures differ?) -> values of ``metric`` (one per SAE pair, at
    ``pairing``) of the ``sae_pairs`` rows across sae.arch; a value stored once per null counts once."""
    seen: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if r["analysis"] != "sae_pairs" or r["metric"] != metric or r["pairing"] != pairing or r["value"] is None:
            continue
        cond = json.loads(r["condition_json"])
        if isinstance(cond.get("sae.arch"), list):
            seen.setdefault((r["condition_json"], r["replicate"], r["seed_a"], r["seed_b"]), r["value"])
    out: dict[float, dict[bool, list[float]]] = defaultdict(lambda: defaultdict(list))
    for (condition, *_), value in seen.items():
        cond = json.loads(condition)
        a, b = cond["sae.arch"]
        out[float(cond.get("sae.checkpoint", 1.0))][a != b].append(value)
    return out


def _largest_drop(values: list[float]) -> float:
    """The most a value falls below the highest one before it (0 when it never falls)."""
    return max([0.0] + [max(values[:i]) - v for i, v in enumerate(values) if i])


@register_finding("weak_strong_universality")
def weak_strong_universality(rows: list[dict[str, Any]]) -> Finding:
    """Task 2.4: "weak universality emerges early and remains stable, while strong universality
    (exact feature matching) never fully develops", from ``sae_pairs`` rows across sae.arch at
    every ``sae.checkpoint`` c_1 < ... < c_T (c_T: the last, normally 1). Per checkpoint, weak(c) =
    mean cross-architecture SVCCA (pairs a != b; the first pairing mode in sorted order) and
    strong(c) = mean cross-architecture decoder MCC (mean |cos| over the two decoders' optimal
    one-to-one matching). Operationally, the hypothesis holds when all three do:

    * emerges early: weak(c_1) >= WEAK_EARLY_SHARE x weak(c_T);
    * stays stable: max_k (max_{j<k} weak(c_j) - weak(c_k)) <= WEAK_STABLE_DROP;
    * strong never fully develops: max_c strong(c) < STRONG_FULL.

    Also: whether architectures start different and converge (weak(c_T) - weak(c_1) >
    WEAK_STABLE_DROP), start similar and diverge (< -WEAK_STABLE_DROP) or stay as similar as they
    start, and the same-architecture (seed-vs-seed) floors at c_T."""
    svcca = [r for r in rows if r["analysis"] == "sae_pairs" and r["metric"] == "svcca"]
    pairing = min((r["pairing"] for r in svcca), default="")
    weak, strong = _pair_values(rows, "svcca", pairing), _pair_values(rows, "decoder_mcc", "")
    checkpoints = sorted(c for c in weak if weak[c][True] and strong.get(c, {}).get(True))
    if len(checkpoints) < 2:
        raise DataError("weak_strong_universality: needs cross-architecture sae_pairs rows (svcca, decoder_mcc) at "
                        ">= 2 checkpoints")
    w = [float(np.mean(weak[c][True])) for c in checkpoints]
    s = [float(np.mean(strong[c][True])) for c in checkpoints]
    share, drop, top = w[0] / w[-1], _largest_drop(w), max(s)
    early, stable, never = share >= WEAK_EARLY_SHARE, drop <= WEAK_STABLE_DROP, top < STRONG_FULL
    first, last = checkpoints[0], checkpoints[-1]
    change = w[-1] - w[0]
    trend = ("start different and converge" if change > WEAK_STABLE_DROP else "start similar and diverge"
             if change < -WEAK_STABLE_DROP else "stay about as similar as they start")
    path = ", ".join(f"{c:g}: {v:.3f}" for c, v in zip(checkpoints, w))
    strong_path = ", ".join(f"{c:g}: {v:.3f}" for c, v in zip(checkpoints, s))
    floor_w, floor_s = weak[last][False], strong[last][False]
    sentences = [
        f"Weak universality (cross-architecture SVCCA, {pairing} pairing, {len(weak[last][True])} SAE pairs at the last "
        f"checkpoint) by fraction of training: {path}. At {first:g} it is {share:.0%} of its value at {last:g} "
        f"({'at least' if early else 'below'} {WEAK_EARLY_SHARE:.0%}: it {'emerges' if early else 'does not emerge'} "
        f"early); its largest fall below an earlier value is {drop:.3f} ({'within' if stable else 'more than'} "
        f"{WEAK_STABLE_DROP}: {'stable' if stable else 'not stable'}).",
        f"Strong universality (cross-architecture decoder MCC): {strong_path}; its highest value {top:.3f} is "
        f"{'below' if never else 'at or above'} {STRONG_FULL} ({'never fully develops' if never else 'develops'}).",
        f"By SVCCA the architectures {trend} ({w[0]:.3f} at {first:g}, {w[-1]:.3f} at {last:g})."
        + (f" Same-architecture seed floors at {last:g}: SVCCA {np.mean(floor_w):.3f}, decoder MCC "
           f"{np.mean(floor_s):.3f}." if floor_w and floor_s else ""),
        f"The plan's hypothesis (weak universality early and stable, strong never full) "
        f"{'holds' if early and stable and never else 'does not hold'} here.",
    ]
    numbers = {"checkpoints": checkpoints, "pairing": pairing, "weak": w, "strong": s, "early_share": share,
               "largest_drop": drop, "strong_max": top, "early": early, "stable": stable, "strong_never_full": never,
               "held": early and stable and never}
    return Finding("weak_strong_universality", sentences, numbers)


def _dead_steps(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(arch, revival) -> {"dlr": checkpoint -> [dead fraction per SAE], "dls"/"dlrec": [defined
    values per step and SAE], "last_dls": [DLS of the last step per SAE]} from ``dead_latents`` rows."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    dlr: dict[tuple[str, str], dict[tuple[float, int, int], float]] = defaultdict(dict)
    last: dict[tuple[str, str], float] = {}
    for r in rows:
        if r["analysis"] != "dead_latents" or r["value"] is None:
            continue
        cond = json.loads(r["condition_json"])
        key = (str(cond.get("sae.arch", "default")), str(cond.get("sae.revival", "recipe")))
        a, b = cond["sae.checkpoint"]
        g = groups.setdefault(key, {"dls": [], "dlrec": [], "steps": []})
        if r["metric"] in ("dead_fraction_a", "dead_fraction_b"):
            at = a if r["metric"] == "dead_fraction_a" else b
            dlr[key][float(at), r["seed_a"], r["replicate"]] = r["value"]
        elif r["metric"] == "dead_latent_stability":
            g["dls"].append(r["value"])
            g["steps"].append((b, r["value"]))
            last[key] = max(last.get(key, 0.0), b)
        elif r["metric"] == "dead_latent_recovery":
            g["dlrec"].append(r["value"])
    for key, g in groups.items():
        per: dict[float, list[float]] = defaultdict(list)
        for (at, _, _), value in dlr[key].items():
            per[at].append(value)
        g["dlr"] = {at: per[at] for at in sorted(per)}
        g["last_dls"] = [v for b, v in g.pop("steps") if b == last.get(key)]
    return groups


def _mean_text(values: list[float], fmt: str = ".2f") -> str:
    """The mean of ``values`` formatted, or 'undefined' (no step had a dead latent to count from)."""
    return format(float(np.mean(values)), fmt) if values else "undefined"


@register_finding("dead_latent_dynamics")
def dead_latent_dynamics(rows: list[dict[str, Any]]) -> Finding:
    """Task 6.1, per architecture and revival method (``sae.revival``), from ``dead_latents`` rows
    (one run's consecutive checkpoints): DLR at every checkpoint (mean dead fraction over seeds),
    DLS and DLRec (means over steps and seeds of the defined values, formulas in
    :func:`featgeom.experiments.analyses.dead_latent_steps`). "Dead latents die early" is read as
    DLS of the last step (latents dead at the end that were dead at the checkpoint before) >=
    DIE_EARLY; each revival method is set against 'none' of the same architecture (final DLR and
    DLRec). With ``coverage`` rows: the feature discovery gap of one SAE, 1 - its coverage (share
    of true features no decoder row reaches |cos| >= 0.5 with), at the last checkpoint."""
    groups = _dead_steps(rows)
    if not groups:
        raise DataError("dead_latent_dynamics: no dead_latents rows (run it with across: sae.checkpoint)")
    sentences, numbers = [], {}
    for (arch, revival), g in sorted(groups.items()):
        final = float(np.mean(g["dlr"][max(g["dlr"])]))
        numbers[f"{arch}/{revival}"] = {"dlr": {c: float(np.mean(v)) for c, v in g["dlr"].items()},
                                        "dls": float(np.mean(g["dls"])) if g["dls"] else None,
                                        "dlrec": float(np.mean(g["dlrec"])) if g["dlrec"] else None,
                                        "final_dlr": final}
        path = ", ".join(f"{c:g}: {np.mean(v):.1%}" for c, v in g["dlr"].items())
        early = (f"dead latents {'die early' if np.mean(g['last_dls']) >= DIE_EARLY else 'do not die early'} (DLS of "
                 f"the last step {np.mean(g['last_dls']):.2f} vs {DIE_EARLY})" if g["last_dls"] else
                 "no latent is dead at the end")
        sentences.append(f"{arch}, revival {revival}: dead fraction by checkpoint {path}; DLS {_mean_text(g['dls'])}, "
                         f"DLRec {_mean_text(g['dlrec'])}; {early}.")
    for (arch, revival), g in sorted(groups.items()):
        base = numbers.get(f"{arch}/none")
        if revival == "none" or base is None:
            continue
        mine = numbers[f"{arch}/{revival}"]
        sentences.append(f"{arch}: {revival} ends with {mine['final_dlr']:.1%} dead latents against none's "
                         f"{base['final_dlr']:.1%}, and revives {_mean_text(g['dlrec'], '.0%')} of the dead latents "
                         f"per checkpoint step against none's {_mean_text(groups[arch, 'none']['dlrec'], '.0%')}.")
    gaps = _discovery_gaps(rows)
    if gaps:
        numbers["discovery_gap"] = gaps
        sentences.append("Feature discovery gap (share of true features one SAE does not capture) at the last checkpoint: "
                         + ", ".join(f"{k} {v:.1%}" for k, v in sorted(gaps.items())) + ".")
    return Finding("dead_latent_dynamics", sentences, numbers)


def _discovery_gaps(rows: list[dict[str, Any]]) -> dict[str, float]:
    """'arch/revival' -> mean over seeds of 1 - coverage of the ``coverage`` rows at the last checkpoint."""
    per: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["analysis"] == "coverage" and r["metric"] == "coverage" and r["value"] is not None:
            cond = json.loads(r["condition_json"])
            key = f"{cond.get('sae.arch', 'default')}/{cond.get('sae.revival', 'recipe')}"
            per[key][float(cond.get("sae.checkpoint", 1.0))].append(1.0 - r["value"])
    return {key: float(np.mean(by[max(by)])) for key, by in per.items()}


# --- matching pursuit against standard L1 under superposition (plan task 3.2) ---

MP_ARCH, L1_ARCH = "matching_pursuit", "standard"


def _sae_cells(rows: list[dict[str, Any]], analyses: tuple[str, ...]) -> dict[tuple[str, str, int, int], dict[str, float]]:
    """(world: the condition without its sae.* axes, arch, seed, replicate) -> metric -> value of
    the rows of ``analyses`` (one SAE each)."""
    cells: dict[tuple[str, str, int, int], dict[str, float]] = defaultdict(dict)
    for r in rows:
        if r["analysis"] not in analyses or r["value"] is None:
            continue
        cond = json.loads(r["condition_json"])
        arch = str(cond.get("sae.arch", "default"))
        world = json.dumps({k: v for k, v in cond.items() if not k.startswith("sae.")}, sort_keys=True)
        cells[world, arch, r["seed_a"], r["replicate"]][r["metric"]] = r["value"]
    return cells


def _claim(mp: list[float], l1: list[float], higher: bool) -> str:
    """'held' when MP's mean is above (``higher``) or below l1's, 'held in every seed' when every MP
    SAE is, else 'not held'."""
    sign = 1.0 if higher else -1.0
    if sign * (min(mp) if higher else max(mp)) > sign * (max(l1) if higher else min(l1)):
        return "held in every seed"
    return "held" if sign * (np.mean(mp) - np.mean(l1)) > 0 else "not held"


@register_finding("mp_exploitation")
def mp_exploitation(rows: list[dict[str, Any]]) -> Finding:
    """Task 3.2: "at high rho_mm matching pursuit reaches lower reconstruction error but lower MCC
    than standard L1, because it exploits superposition". Per world (the condition without its
    sae.* axes; its target rho_mm when the grid sets one, and the rho_mm reached), from
    ``recovery`` and ``feature_splitting`` rows of both architectures (means over seeds and
    replicates): (1) MP's explained variance above L1's; (2) MP's MCC below L1's, testable only
    when L1's mean MCC is at least AT_CHANCE above a random decoder's (``mcc_chance``; below it L1
    did not learn, and MP's MCC being higher or lower says nothing about the claim); (3) MP's
    superposition exploitation (latents per reconstructed feature) above L1's, testable when both
    reconstruct some feature and L1 learned (an SAE at chance reconstructs a few features by
    accident, with many latents). Each claim per world: 'held in every seed' (every MP SAE beyond
    every L1 SAE), 'held' (on the means), 'not held' or 'not testable'."""
    cells = _sae_cells(rows, ("recovery", "feature_splitting"))
    worlds = sorted({w for w, arch, _, _ in cells if arch in (MP_ARCH, L1_ARCH)})
    per_world: dict[str, dict[str, dict[str, list[float]]]] = {}
    for world in worlds:
        per_world[world] = {arch: defaultdict(list) for arch in (MP_ARCH, L1_ARCH)}
        for (w, arch, _, _), m in cells.items():
            if w == world and arch in (MP_ARCH, L1_ARCH):
                for key, value in m.items():
                    per_world[world][arch][key].append(value)
    complete = [w for w in worlds if all(per_world[w][a]["mcc"] and per_world[w][a]["explained_variance"]
                                         for a in (MP_ARCH, L1_ARCH))]
    if not complete:
        raise DataError(f"mp_exploitation: no world with recovery rows of both {MP_ARCH} and {L1_ARCH}")
    sentences, numbers = [], {}
    for world in complete:
        label, entry = _mp_world(json.loads(world), per_world[world][MP_ARCH], per_world[world][L1_ARCH])
        numbers[label] = entry
        sentences.append(_mp_sentence(label, entry))
    for claim in ("explained_variance", "mcc", "exploitation"):
        verdicts = [e["claims"][claim] for e in numbers.values()]
        held = sum(v.startswith("held") for v in verdicts)
        testable = sum(v != "not testable" for v in verdicts)
        sentences.append(f"{CLAIM_TEXT[claim]}: held at {held} of {testable} testable worlds ({len(verdicts)} in all).")
    return Finding("mp_exploitation", sentences, numbers)


MP_MEANS = ("explained_variance", "mcc", "mcc_chance", "exploitation", "reconstructed_fraction", "split_fraction",
            "split_fraction_chance", "rho_mm", "hidden_dim")  # the per-architecture means a world's entry reports
CLAIM_TEXT = {"explained_variance": "MP explains more variance than standard L1",
              "mcc": "MP has lower MCC than standard L1 (where L1 learned)",
              "exploitation": "MP uses more latents per true feature than standard L1"}


def _mp_world(world: dict[str, Any], mp: dict[str, list[float]], l1: dict[str, list[float]]) -> tuple[str, dict[str, Any]]:
    """The world's label ('target_rho_mm=0.3' or 'rho_mm=0.301') and its means and claims."""
    reached = float(np.mean(mp["rho_mm"] + l1["rho_mm"])) if mp["rho_mm"] + l1["rho_mm"] else None
    label = condition_text(world) or (f"rho_mm={reached:.3f}" if reached is not None else "the preset world")
    means = {arch: {k: float(np.mean(values[k])) for k in MP_MEANS if values[k]} for arch, values in ((MP_ARCH, mp), (L1_ARCH, l1))}
    l1_above = means[L1_ARCH]["mcc"] - means[L1_ARCH].get("mcc_chance", 0.0)
    claims = {"explained_variance": _claim(mp["explained_variance"], l1["explained_variance"], higher=True),
              "mcc": _claim(mp["mcc"], l1["mcc"], higher=False) if l1_above >= AT_CHANCE else "not testable",
              "exploitation": (_claim(mp["exploitation"], l1["exploitation"], higher=True)
                               if mp["exploitation"] and l1["exploitation"] and l1_above >= AT_CHANCE
                               else "not testable")}
    return label, {"rho_mm": reached, "hidden_dim": means[MP_ARCH].get("hidden_dim"), "means": means,
                   "l1_mcc_above_chance": l1_above, "claims": claims}


def condition_text(world: dict[str, Any]) -> str:
    """'target_rho_mm=0.3, depth=2': a world condition with each axis's last dotted part."""
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v:g}" if isinstance(v, float) else f"{k.rsplit('.', 1)[-1]}={v}"
                     for k, v in world.items())


def _mp_sentence(label: str, entry: dict[str, Any]) -> str:
    """One world's numbers and verdicts in words."""
    mp, l1, claims = entry["means"][MP_ARCH], entry["means"][L1_ARCH], entry["claims"]
    reached = f" (rho_mm reached {entry['rho_mm']:.3f}" + (f", hidden_dim {entry['hidden_dim']:g})"
                                                          if entry["hidden_dim"] is not None else ")")
    mcc = (f"MCC {mp['mcc']:.3f} vs {l1['mcc']:.3f}: lower MCC {claims['mcc']}" if claims["mcc"] != "not testable" else
           f"MCC {mp['mcc']:.3f} vs {l1['mcc']:.3f}, but standard L1 is at chance (random decoder "
           f"{l1.get('mcc_chance', float('nan')):.3f}, {entry['l1_mcc_above_chance']:+.3f} above it): it did not learn, "
           "so the MCC claim is not testable here")
    shares = (f" (over the {mp.get('reconstructed_fraction', float('nan')):.0%} / "
              f"{l1.get('reconstructed_fraction', float('nan')):.0%} of features each reconstructs)")
    if claims["exploitation"] != "not testable":
        exploit = (f"exploitation {mp['exploitation']:.2f} vs {l1['exploitation']:.2f} latents per feature{shares}: "
                   f"higher {claims['exploitation']}")
    elif "exploitation" in mp and "exploitation" in l1:
        exploit = (f"exploitation {mp['exploitation']:.2f} vs {l1['exploitation']:.2f}{shares}, not testable "
                   "(standard L1 did not learn)")
    else:
        exploit = "exploitation not testable (an architecture reconstructs no true feature within its best latents)"
    split = ""
    if "split_fraction" in mp and "split_fraction" in l1:
        split = (f"; features split over several latents {mp['split_fraction']:.0%} vs {l1['split_fraction']:.0%} "
                 f"(random decoder {mp.get('split_fraction_chance', float('nan')):.0%})")
    return (f"{label}{reached if entry['rho_mm'] is not None else ''}: MP vs standard L1 explained variance "
            f"{mp['explained_variance']:.3f} vs {l1['explained_variance']:.3f}: higher "
            f"{claims['explained_variance']}; {mcc}; {exploit}{split}.")
