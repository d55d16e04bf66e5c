"""Fixtures of the CLI tests."""

import pytest

from featgeom.family import FamilyConfig, build_family, save
from featgeom.sae import train
from featgeom.sae.recipes import recipe


@pytest.fixture(scope="session")
def stored(tiny_world, tmp_path_factory):
    """(root, (SAE of base, SAE of rot)): a family with a 30-degree rotated variant saved at
    root/family, another family at root/other, one TopK SAE per member of the first in root/store."""
    root = tmp_path_factory.mktemp("cmp")
    fam = build_family(FamilyConfig.from_dict({"world": tiny_world.config.to_dict(),
                                               "variants": [{"name": "rot", "basis_rotation_angle": 30}]}),
                       world=tiny_world)
    save(fam, root / "family")
    other = build_family(FamilyConfig.from_dict({"world": tiny_world.config.to_dict(), "seed": 9}), world=tiny_world)
    save(other, root / "other")
    saes = [train(fam, m, recipe("topk", fam, m, samples=20_000, width=64), store=root / "store", eval_samples=2000)
            for m in ("base", "rot")]
    return root, saes
