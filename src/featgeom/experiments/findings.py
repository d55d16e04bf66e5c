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
