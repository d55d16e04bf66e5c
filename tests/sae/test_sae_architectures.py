"""The architecture registry: each architecture's facts in one place, read by the config, the
training loop, the recipes and the CLI."""

import pytest

from featgeom.sae import ARCHITECTURES, SAETrainConfig
from featgeom.sae.arch import build_training_sae, coefficient_name
from featgeom.sae.architectures import REGISTRY
from featgeom.sae.config import CONTROLLED
from featgeom.sae.recipes import RECIPES
from featgeom.sae.sparse import supports_sparse


def test_the_config_recipes_and_cli_list_the_registry_in_order(run_cli):
    assert ARCHITECTURES == tuple(REGISTRY) == tuple(RECIPES)
    assert CONTROLLED == ("standard", "jumprelu", "gated")
    code, out, err = run_cli("sae", "architectures")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(ARCHITECTURES)
    for line, a in zip(lines, REGISTRY.values()):
        assert line.endswith(a.description)
        assert ("controller on" in line) == a.controlled


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_each_entry_matches_its_saelens_class(arch):
    """The gate a controlled architecture calibrates is a parameter of its SAELens class, its
    coefficient is the one SAELens's training pass reads, the sparse pass is claimed exactly where
    it applies, and aux revival is accepted exactly where the registry allows it."""
    a = REGISTRY[arch]
    cfg = SAETrainConfig(arch=arch, width=32, l0=4, revival="resample")
    sae = build_training_sae(cfg, 16)
    if a.controlled:
        assert isinstance(getattr(sae, a.gate), __import__("torch").nn.Parameter)
        assert coefficient_name(arch) in sae.get_coefficients()
    else:
        assert a.gate is None
        with pytest.raises(ValueError):
            coefficient_name(arch)
    assert supports_sparse(sae) == a.sparse_pass
    if a.aux_revival:
        assert SAETrainConfig(arch=arch, width=32, l0=4, revival="aux").revival == "aux"
    else:
        with pytest.raises(Exception, match="^revival: 'aux' needs"):
            SAETrainConfig(arch=arch, width=32, l0=4, revival="aux")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_recipe_is_a_valid_config(arch):
    settings = {k: v for k, v in REGISTRY[arch].recipe.items() if k != "width_factor"}
    assert SAETrainConfig.from_dict({"arch": arch, "width": 64, "l0": 4, **settings}).arch == arch
