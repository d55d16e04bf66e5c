"""Our world equals the world SAELens's SyntheticModel builds from the same values."""

import numpy as np
import pytest

from featgeom.world.build import build_world, hierarchy_depth, to_saelens_config
from featgeom.world.config import preset


@pytest.fixture(scope="module")
def reference(tiny_world):
    from sae_lens.synthetic import SyntheticModel

    return SyntheticModel(to_saelens_config(tiny_world.config))


def test_same_world_as_saelens(tiny_world, reference):
    gen = reference.activation_generator
    np.testing.assert_array_equal(tiny_world.firing_probabilities, gen.firing_probabilities.numpy())
    np.testing.assert_array_equal(tiny_world.mean_magnitudes, gen.mean_firing_magnitudes.numpy())
    np.testing.assert_array_equal(tiny_world.std_magnitudes, gen.std_firing_magnitudes.numpy())
    np.testing.assert_array_equal(tiny_world.correlation_factor, reference.correlation_matrix.correlation_factor.numpy())
    np.testing.assert_array_equal(tiny_world.bias, reference.feature_dict.bias.detach().numpy())
    # orthogonalization runs through the O(N d^2) gradient: equal up to float rounding
    np.testing.assert_allclose(tiny_world.feature_vectors, reference.feature_dict.feature_vectors.detach().numpy(),
                               atol=1e-5)


def test_round_trip_to_saelens_model(tiny_world, reference):
    model = tiny_world.to_saelens()
    assert model.hierarchy == reference.hierarchy
    assert np.array_equal(model.feature_dict.feature_vectors.detach().numpy(), tiny_world.feature_vectors)


def test_build_is_deterministic(tiny_world):
    again = build_world(preset("tiny"))
    for name, arr in tiny_world.arrays().items():
        np.testing.assert_array_equal(arr, again.arrays()[name], err_msg=name)


def test_hierarchy_shape(tiny_world):
    h = tiny_world.config.hierarchy
    depth = tiny_world.depth()
    assert np.count_nonzero(tiny_world.parent >= 0) == h.size() - h.roots
    assert depth.max() == h.depth
    np.testing.assert_array_equal(hierarchy_depth(np.array([-1, 0, 1, -1])), [0, 1, 2, 0])


def test_presets_are_sized_for_this_machine():
    # tiny is for tests (seconds); small/medium are CPU experiment worlds
    for name, (lo, hi) in {"tiny": (64, 256), "small": (256, 4096), "medium": (256, 4096)}.items():
        cfg = preset(name)
        assert lo <= cfg.num_features <= hi
        assert 16 <= cfg.hidden_dim <= 512
