"""The fast sampler draws from the same law as SAELens's ActivationGenerator + hierarchy modifier.

For each world both samplers draw N samples; per-feature firing rates, mean magnitudes, the L0
distribution and co-firing of the most correlated pairs must agree within sampling error
(|z| < 4.5: with a few hundred comparisons a false alarm has probability < 1e-3), and hierarchy
constraints must hold exactly.  A deliberately broken sampler must fail the same comparison.
"""

import numpy as np
import pytest
import torch
from scipy.stats import chi2_contingency

from featgeom.world.sampler import FastSampler

N = 200_000
Z_MAX = 4.5


def saelens_features(world, n: int, seed: int = 0) -> np.ndarray:
    model = world.to_saelens()
    torch.manual_seed(seed)
    return np.concatenate([model.activation_generator.sample(20_000).numpy() for _ in range(n // 20_000)])


def two_proportion_z(k1, k2, n1, n2):
    p = (k1 + k2) / (n1 + n2)
    se = np.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return np.where(se > 0, (k1 / n1 - k2 / n2) / np.where(se > 0, se, 1), 0.0)


def discrepancies(world, ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Largest |z| of each statistic between two dense (n, N) activation samples."""
    n1, n2 = len(ours), len(ref)
    on1, on2 = ours > 0, ref > 0
    k1, k2 = on1.sum(0), on2.sum(0)
    out = {"firing_rate": float(np.abs(two_proportion_z(k1, k2, n1, n2)).max())}
    both = (k1 >= 50) & (k2 >= 50)
    out["mean_magnitude"] = moment_z(ours, ref, both, power=1)
    out["mean_square_magnitude"] = moment_z(ours, ref, both, power=2)
    l0a, l0b = on1.sum(1), on2.sum(1)
    top = max(l0a.max(), l0b.max()) + 1
    table = np.stack([np.bincount(l0a, minlength=top), np.bincount(l0b, minlength=top)])
    table = table[:, table.sum(0) >= 20]
    out["l0_distribution_p"] = float(chi2_contingency(table)[1])
    if world.correlation_factor is not None:
        pairs = most_correlated_pairs(world)
        out["co_firing"] = float(max(abs(two_proportion_z((on1[:, i] & on1[:, j]).sum(),
                                                          (on2[:, i] & on2[:, j]).sum(), n1, n2))
                                     for i, j in pairs))
    return out


def moment_z(ours: np.ndarray, ref: np.ndarray, features: np.ndarray, power: int) -> float:
    """Largest |z| between E[x^power | active] of the two samples over the given features."""
    stats = []
    for acts in (ours[:, features], ref[:, features]):
        on = acts > 0
        k = on.sum(0)
        x = np.where(on, acts.astype(np.float64) ** power, 0.0)
        mean = x.sum(0) / k
        var = (x**2).sum(0) / k - mean**2
        stats.append((mean, var / k))
    (m1, v1), (m2, v2) = stats
    return float(np.abs((m1 - m2) / np.sqrt(v1 + v2 + 1e-12)).max())


def most_correlated_pairs(world, count: int = 8) -> list[tuple[int, int]]:
    """Top-level feature pairs (both p >= 0.02) with the largest copula correlation F_i . F_j."""
    cand = np.flatnonzero((world.parent < 0) & (world.firing_probabilities >= 0.02))
    f = world.correlation_factor[cand]
    corr = f @ f.T
    np.fill_diagonal(corr, -np.inf)
    iu = np.triu_indices(len(cand), 1)
    order = np.argsort(corr[iu])[::-1][:count]
    return [(int(cand[iu[0][k]]), int(cand[iu[1][k]])) for k in order]


def hierarchy_violations(world, acts: np.ndarray) -> int:
    """Active children whose parent is inactive, plus exclusive sibling groups with > 1 active."""
    on = acts > 0
    child = np.flatnonzero(world.parent >= 0)
    bad = int((on[:, child] & ~on[:, world.parent[child]]).sum())
    for p in np.flatnonzero(world.me_children):
        kids = np.flatnonzero(world.parent == p)
        bad += int((on[:, kids].sum(1) > 1).sum())
    return bad


@pytest.fixture(scope="module", params=[("tiny_world", 1), ("tiny_world", 2), ("plain_world", 1), ("flat_world", 1)],
                ids=["tiny", "tiny-2-workers", "plain", "flat"])
def sampled(request):
    name, workers = request.param
    world = request.getfixturevalue(name)
    sampler = world.sampler(seed=11, workers=workers)
    ours = sampler.sample_features(N).to_dense()
    sampler.close()
    return world, ours, saelens_features(world, N)


def test_same_law_as_saelens(sampled):
    world, ours, ref = sampled
    d = discrepancies(world, ours, ref)
    assert d["firing_rate"] < Z_MAX, d
    assert d["mean_magnitude"] < Z_MAX, d
    assert d["mean_square_magnitude"] < Z_MAX, d
    assert d["l0_distribution_p"] > 1e-4, d
    if "co_firing" in d:
        assert d["co_firing"] < Z_MAX, d


def test_no_hierarchy_violations(sampled):
    world, ours, ref = sampled
    assert hierarchy_violations(world, ref) == 0  # the reference obeys the same rules
    assert hierarchy_violations(world, ours) == 0
    if np.any(world.me_children):
        kids = np.flatnonzero(world.me_children[np.maximum(world.parent, 0)] & (world.parent >= 0))
        assert (ours[:, kids] > 0).any()  # exclusive children do fire


def test_correlated_pairs_really_co_fire(tiny_world):
    acts = tiny_world.sampler(seed=2).sample_features(N).to_dense() > 0
    i, j = most_correlated_pairs(tiny_world, 1)[0]
    p_i, p_j, p_ij = acts[:, i].mean(), acts[:, j].mean(), (acts[:, i] & acts[:, j]).mean()
    assert p_ij > p_i * p_j + 5 * np.sqrt(p_i * p_j / N)


@pytest.fixture(scope="module")
def tiny_reference(tiny_world):
    return saelens_features(tiny_world, N)


def broken_sampler(world, breakage: str) -> FastSampler:
    """A sampler with one rule of the law switched off."""
    sampler = world.sampler(seed=11)
    law = sampler.law
    if breakage == "no_exclusion":
        law._mutual_exclusion = lambda event, parents, rng: np.ones(event.size, dtype=bool)
    elif breakage == "no_scaling":
        law.scale_children = np.zeros_like(law.scale_children)
    elif breakage == "no_correlation":
        law.factor = np.zeros_like(law.factor)
        law.top_factor_t = np.zeros_like(law.top_factor_t)
    return sampler


@pytest.mark.parametrize("breakage", ["no_exclusion", "no_scaling", "no_correlation"])
def test_comparison_detects_a_broken_sampler(tiny_world, tiny_reference, breakage):
    ours = broken_sampler(tiny_world, breakage).sample_features(N).to_dense()
    d = discrepancies(tiny_world, ours, tiny_reference)
    failed = [k for k, v in d.items() if (v < 1e-4 if k.endswith("_p") else v > Z_MAX)]
    assert failed, (breakage, d)
