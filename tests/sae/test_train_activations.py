"""SAEs trained on stored activations (an array): the epoch stream, the held-out split, determinism,
resume, recovery of planted directions, refusals, and the family path left exactly as it was."""

import json

import numpy as np
import pytest
import torch

from featgeom.errors import ConfigError, DataError, ShapeError
from featgeom.sae import load, train
from featgeom.sae.artifact import GENERATOR, KIND, run_config, run_id
from featgeom.sae.checkpoint import checkpoint_root, checkpoint_samples
from featgeom.sae.data import ArrayStream, check_activations, eval_row_count, split_rows
from featgeom.sae.evaluate import evaluate, evaluate_reconstruction
from featgeom.sae.train import activation_recipe, family_id_of, train_on_activation_set, train_on_activations
from featgeom.store.artifacts import artifact_id

SOURCE = {"activations": "planted-test", "layer": 0}


def planted(n: int = 20_000, d: int = 32, m: int = 64, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n rows, each a sum of k of m random unit directions (d dims) with weights U(0.5, 1.5);
    returns (rows (n, d) float32, directions (m, d))."""
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((m, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    active = np.argsort(rng.random((n, m)), axis=1)[:, :k]
    coef = np.zeros((n, m))
    np.put_along_axis(coef, active, rng.uniform(0.5, 1.5, (n, k)), axis=1)
    return (coef @ dirs).astype(np.float32), dirs


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def small():
    """4,000 planted rows: 512 held out, 3,488 to train on (a 16k-sample run is ~4.7 epochs)."""
    return planted(n=4_000)[0]


def _cfg(quick, arch="topk", **changes):
    return quick(arch, l0=3, **changes)


# ----------------------------------------------------------------------------------------- stream

def test_stream_visits_every_row_once_per_epoch_and_reshuffles():
    acts = np.arange(40, dtype=np.float32).reshape(20, 2)
    rows = np.array([1, 3, 4, 7, 8, 11, 15, 19])
    stream = ArrayStream(acts, seed=5, rows=rows)
    drawn = np.concatenate([stream.next_indices(3) for _ in range(8)])  # 24 = 3 epochs, batches cross epochs
    epochs = drawn.reshape(3, 8)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), rows)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    assert stream.state() == {"epoch": 3, "position": 0} and stream.epochs == 3.0
    other = ArrayStream(acts, seed=6, rows=rows)
    assert not np.array_equal(other.next_indices(8), epochs[0])


def test_stream_state_round_trip_continues_exactly():
    acts = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    a = ArrayStream(acts, seed=1)
    a.next_hidden(37)
    state = json.loads(json.dumps(a.state()))  # JSON-ready
    expected = a.next_hidden(80)  # crosses into epoch 2
    b = ArrayStream(acts, seed=1)
    b.set_state(state)
    assert torch.equal(b.next_hidden(80), expected)
    assert expected.dtype == torch.float32 and expected.shape == (80, 4)


def test_split_is_fixed_disjoint_and_covers_the_rows():
    train_rows, eval_rows = split_rows(1000, 120)
    assert eval_rows.size == 120 and train_rows.size == 880
    assert np.intersect1d(train_rows, eval_rows).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train_rows, eval_rows])), np.arange(1000))
    again = split_rows(1000, 120)
    np.testing.assert_array_equal(again[1], eval_rows)
    assert eval_row_count(20_000, 100_000) == 2000
    assert eval_row_count(1000, 100_000) == 512  # at least MIN_EVAL_SAMPLES
    assert eval_row_count(10**7, 100_000) == 100_000  # at most the cap


def test_training_never_sees_the_held_out_rows(small):
    n_eval = eval_row_count(len(small), 100_000)
    train_rows, eval_rows = split_rows(len(small), n_eval)
    stream = ArrayStream(small, seed=0, rows=train_rows)
    seen = np.unique(np.concatenate([stream.next_indices(1000) for _ in range(10)]))
    np.testing.assert_array_equal(seen, train_rows)
    assert np.intersect1d(seen, eval_rows).size == 0


# ---------------------------------------------------------------------------------------- training

def test_planted_directions_are_recovered(data, quick):
    """TopK, width 64, k 3 on 20k sparse combinations of 64 directions in 32 dims: 200k samples
    (~11 epochs, ~2 s) give explained variance ~0.89 and recover ~55 of the 64 directions."""
    acts, dirs = data
    cfg = quick("topk", width=64, l0=3, samples=200_000, log_every=8192, dead_window=20_000)
    trained = train_on_activations(acts, cfg, source=SOURCE)
    assert trained.metrics["explained_variance"] > 0.8
    assert trained.metrics["l0"] == pytest.approx(3.0)
    assert trained.metrics["num_samples"] == 2000
    dec = trained.sae.W_dec.detach().numpy()
    best = np.abs(dirs @ (dec / np.linalg.norm(dec, axis=1, keepdims=True)).T).max(axis=1)
    assert (best > 0.9).sum() >= 48, np.sort(best)


def test_same_array_config_and_seed_give_the_same_sae(small, quick):
    a = train_on_activations(small, _cfg(quick, seed=3), source=SOURCE)
    b = train_on_activations(small.copy(), _cfg(quick, seed=3), source=SOURCE)
    c = train_on_activations(small, _cfg(quick, seed=4), source=SOURCE)
    assert a.id == b.id and a.metrics == b.metrics
    for name, value in a.sae.state_dict().items():
        assert torch.equal(value, b.sae.state_dict()[name]), name
    assert a.id != c.id and not torch.equal(a.sae.W_dec, c.sae.W_dec)
    assert a.family_id is None and a.member is None and a.path is None


def test_the_id_follows_the_data_and_the_source(small, quick):
    from featgeom.sae.train import activation_run_config

    cfg = _cfg(quick)
    base = activation_run_config(cfg, SOURCE, small, 512)
    changed = small.copy()
    changed[17, 3] += 1e-3
    ids = {artifact_id(KIND, c, GENERATOR) for c in (
        base, activation_run_config(cfg, SOURCE, changed, 512),
        activation_run_config(cfg, {**SOURCE, "layer": 1}, small, 512),
        activation_run_config(cfg, SOURCE, small, 600))}
    assert len(ids) == 4
    assert base["family_id"] is None and base["member"] is None and base["source"] == SOURCE
    assert base["data"]["rows"] == 4000 and base["data"]["d"] == 32


class _Killed(Exception):
    pass


def test_resume_after_kill_is_bit_identical_and_the_artifact_is_saelens_loadable(small, quick, tmp_path):
    """jumprelu (its recipe's settings): the L0 controller and L0 calibration draw from the stream; 16k samples over
    3,488 training rows cross epochs between checkpoints."""
    from sae_lens import SAE

    cfg = _cfg(quick, "jumprelu", checkpoint_every=4096, seed=2, aux_coefficient=0.01, jumprelu_ste_to_input=False)
    whole = train_on_activations(small, cfg, tmp_path / "a", source=SOURCE, eval_samples=1024)

    def kill_at(samples):
        if samples >= 10_240:
            raise _Killed

    with pytest.raises(_Killed):
        train_on_activations(small, cfg, tmp_path / "b", source=SOURCE, eval_samples=1024, on_step=kill_at)
    assert checkpoint_samples(checkpoint_root(tmp_path / "b", whole.id)) == [4096, 8192]
    assert not list((tmp_path / "b").glob("sae-*"))
    seen = []
    resumed = train_on_activations(small, cfg, tmp_path / "b", source=SOURCE, eval_samples=1024,
                                   on_step=seen.append)
    assert seen[0] == 8192 + 512
    assert resumed.id == whole.id and resumed.metrics == whole.metrics
    for name, value in whole.sae.state_dict().items():
        assert torch.equal(value, resumed.sae.state_dict()[name]), name
    np.testing.assert_array_equal(resumed.history["mse"], whole.history["mse"])
    assert not checkpoint_root(tmp_path / "b", whole.id).exists()  # removed once stored
    # the same writer and loader as for families
    assert whole.path == tmp_path / "a" / f"sae-{whole.id}"
    direct = SAE.load_from_disk(whole.path)
    x = torch.from_numpy(small[:9])
    torch.testing.assert_close(direct.encode(x), whole.sae.encode(x))
    again = load(whole.path)
    assert again.id == whole.id and again.family_id is None and again.member is None
    meta = json.loads((whole.path / "meta.json").read_text())
    config = json.loads((whole.path / "config.json").read_text())
    assert meta["source"] == SOURCE == config["source"] and meta["family_id"] is None
    assert meta["eval_rows"] == 512 and meta["train_rows"] == 3488
    assert meta["epochs"] == pytest.approx(16_384 / 3488)
    assert {"explained_variance", "mse", "l0", "dead_fraction"} <= set(meta["metrics"])
    assert "mcc" not in meta["metrics"]


def test_existing_artifact_is_returned_without_training(small, quick, tmp_path):
    first = train_on_activations(small, _cfg(quick), tmp_path, source=SOURCE)
    calls = []
    again = train_on_activations(small, _cfg(quick), tmp_path, source=SOURCE, on_step=calls.append)
    assert calls == [] and again.id == first.id and again.path == first.path


def test_controlled_sae_is_calibrated_to_the_target_l0_on_held_out_rows(data, quick):
    cfg = quick("standard", width=64, l0=4, samples=32_768, dead_window=8192, resample_every=8192)
    trained = train_on_activations(data[0], cfg, source=SOURCE)
    assert trained.metrics["l0"] == pytest.approx(4.0, rel=0.1)


def test_reconstruction_metrics_equal_the_ground_truth_evaluation(family, quick):
    from featgeom.sae.evaluate import heldout_batches

    trained = train(family, "base", quick("topk"), eval_samples=1024)
    m = family.member("base")
    full = evaluate(trained.sae, m.feature_vectors, heldout_batches(family, "base", 3000, seed=1))
    free = evaluate_reconstruction(trained.sae, (h for h, _ in heldout_batches(family, "base", 3000, seed=1)))
    for key in ("explained_variance", "l0", "dead_latents", "dead_fraction", "shrinkage", "num_samples"):
        assert free[key] == full[key], key
    assert free["mse"] > 0 and "mcc" not in free


# ---------------------------------------------------------------------------------------- refusals

@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda x: x[:700], DataError, "activations: 700 rows are too few: 512 are held out"),
    (lambda x: x[0], ShapeError, "activations: expected a 2-D array"),
    (lambda x: x.astype(np.int32), ShapeError, "activations: expected floating-point"),
    (lambda x: np.where(np.arange(len(x))[:, None] == 1234, np.nan, x), DataError,
     "activations: row 1234 has non-finite values"),
    (lambda x: np.where(np.arange(len(x))[:, None] == 99, np.inf, x), DataError, "activations: row 99 has"),
    (lambda x: np.ones_like(x), DataError, "activations: all 4000 rows are the same vector"),
])
def test_unusable_activations_are_refused(small, quick, tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        train_on_activations(make(small), _cfg(quick), tmp_path / "s", source=SOURCE)
    assert not (tmp_path / "s").exists()


def test_bad_source_eval_samples_and_width_are_refused(small, quick):
    with pytest.raises(ShapeError, match="width 32 but the source says d_model=64"):
        train_on_activations(small, _cfg(quick), source={**SOURCE, "d_model": 64})
    for bad in ({}, None, {"x": object()}, {"x": float("nan")}):
        with pytest.raises(ConfigError, match="source: must be a non-empty JSON-ready dict"):
            train_on_activations(small, _cfg(quick), source=bad)
    with pytest.raises(ConfigError, match="eval_samples"):
        train_on_activations(small, _cfg(quick), source=SOURCE, eval_samples=100)


def test_an_activation_set_gives_the_source_and_its_layers_are_checked(small, quick):
    class FakeSet:
        id, layers, d_model = "abc123", (2, 5), 32

        def layer(self, layer):
            return small

    with pytest.raises(ConfigError, match=r"layer: the activations abc123 hold layers \[2, 5\], not 3"):
        train_on_activation_set(FakeSet(), 3, _cfg(quick))
    trained = train_on_activation_set(FakeSet(), 5, _cfg(quick))
    assert trained.id == train_on_activations(small, _cfg(quick), source={
        "activations": "abc123", "layer": 5, "d_model": 32}).id


def test_activation_recipe_defaults():
    cfg = activation_recipe("topk", 48)
    assert cfg.width == 384 and cfg.l0 == 32 and cfg.lr == 3e-3 and cfg.revival == "aux"
    assert cfg.log_every == cfg.samples // 50
    small = activation_recipe("standard", 2, width=16, samples=20_000)
    assert small.width == 16 and small.l0 == 16 and small.schedule == "cosine" and small.log_every == 1024
    with pytest.raises(ConfigError, match="arch: unknown architecture 'relu9000'"):
        activation_recipe("relu9000", 48)


def test_check_activations_does_not_copy_float32(small):
    assert check_activations(small) is small or np.shares_memory(check_activations(small), small)


# ------------------------------------------------------------------------------ family path unchanged

def test_family_run_config_and_id_are_unchanged(family, quick):
    """The family run config has exactly its pre-activations keys, and its id for a fixed
    generator string is pinned (a change here would orphan every stored family SAE)."""
    cfg = quick("topk")
    config = run_config(cfg, "0123456789abcdef", "base")
    assert set(config) == {"train", "family_id", "member"}
    assert artifact_id(KIND, config, "pinned-generator") == "26362ff9496b458e"
    trained = train(family, "base", cfg, eval_samples=1024)
    assert trained.id == run_id(cfg, family_id_of(family), "base")
    assert trained.family_id == family_id_of(family) and trained.member == "base"
