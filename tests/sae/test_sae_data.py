import numpy as np
import pytest

from featgeom.family.family import COMPARE_SALT, EVAL_SALT, TRAIN_SALT
from featgeom.sae.data import MemberStream
from featgeom.sae.evaluate import heldout_batches


@pytest.mark.parametrize("member", ["base", "rot", "narrow"])
def test_member_stream_equals_family_batches(family, member):
    """One sampling path: a member's stream is the family's batches of the same salt, bit for bit."""
    stream = MemberStream(family, member, seed=3)
    for batch in family.iter_batches(600, seed=3, batch_size=300, with_features=True, salt=TRAIN_SALT):
        hidden, acts = stream.next(300)
        np.testing.assert_array_equal(hidden, batch.hidden[member])
        expected = batch.features[member]
        for part in ("indptr", "indices", "data"):
            np.testing.assert_array_equal(getattr(acts, part), getattr(expected, part))


def test_state_round_trip_continues_the_stream(family):
    a = MemberStream(family, "narrow", seed=1)
    a.next(100)
    state = a.state()
    expected = a.next(50)[0]
    b = MemberStream(family, "narrow", seed=1)
    b.set_state(state)
    np.testing.assert_array_equal(b.next(50)[0], expected)


def test_training_evaluation_and_comparison_streams_are_disjoint_for_equal_seeds(family):
    """Seed 0 everywhere (the CLI defaults) and one batch size: the training batches, the held-out
    evaluation batches and the comparison's samples share no sample (a sample with no active
    feature is the bias alone in every stream, so those are left out)."""
    assert len({TRAIN_SALT, EVAL_SALT, COMPARE_SALT}) == 3
    n = 2000
    train = MemberStream(family, "base", seed=0).next(n)
    evaluation = next(heldout_batches(family, "base", n, seed=0))
    paired = family.sample(n, seed=0, with_features=True, members=["base"])
    compare = paired.hidden["base"], paired.features["base"]
    rows = [{h.tobytes() for h in hidden[np.diff(acts.indptr) > 0]} for hidden, acts in (train, evaluation, compare)]
    assert all(len(r) > n // 2 for r in rows)
    assert not rows[0] & rows[1] and not rows[0] & rows[2] and not rows[1] & rows[2]
    same_salt = family.sample(n, seed=0, members=["base"], salt=COMPARE_SALT).hidden["base"]
    np.testing.assert_array_equal(compare[0], same_salt)
