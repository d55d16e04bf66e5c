import numpy as np
import pytest

from featgeom.sae.data import MemberStream


@pytest.mark.parametrize("member", ["base", "rot", "narrow"])
def test_member_stream_equals_family_batches(family, member):
    stream = MemberStream(family, member, seed=3)
    for batch in family.iter_batches(600, seed=3, batch_size=300, with_features=True):
        hidden, acts = stream.next(300)
        np.testing.assert_allclose(hidden, batch.hidden[member], rtol=1e-5, atol=1e-5)
        assert (acts != batch.features[member]).nnz == 0


def test_state_round_trip_continues_the_stream(family):
    a = MemberStream(family, "narrow", seed=1)
    a.next(100)
    state = a.state()
    expected = a.next(50)[0]
    b = MemberStream(family, "narrow", seed=1)
    b.set_state(state)
    np.testing.assert_array_equal(b.next(50)[0], expected)
