import pytest

from featgeom.errors import ConfigError
from featgeom.sae import ARCHITECTURES, SAETrainConfig
from featgeom.sae.arch import build_training_sae, matryoshka_widths, parameter_groups, sae_config
from featgeom.sae.artifact import run_config, run_id


@pytest.mark.parametrize(("change", "field"), [
    ({"arch": "relu9000"}, "arch"),
    ({"width": 0}, "width"),
    ({"l0": 0}, "l0"),
    ({"l0": 100}, "l0"),
    ({"arch": "topk", "l0": 2.5}, "l0"),
    ({"lr": -1.0}, "lr"),
    ({"samples": 10}, "samples"),
    ({"schedule": "wiggly"}, "schedule"),
    ({"arch": "standard", "revival": "aux"}, "revival"),
    ({"colour": "red"}, "colour"),
    ({"arch": "jumprelu", "jumprelu_sparsity_loss": "cubic"}, "jumprelu_sparsity_loss"),
    ({"arch": "jumprelu", "threshold_lr_factor": 0.0}, "threshold_lr_factor"),
])
def test_bad_config_names_the_field(change, field):
    data = {"arch": "topk", "width": 64, "l0": 4, **change}
    with pytest.raises(ConfigError, match=rf"^{field}: "):
        SAETrainConfig.from_dict(data)


def test_round_trip():
    cfg = SAETrainConfig(arch="matryoshka_batchtopk", width=64, l0=3.5, matryoshka_levels=[0.25, 0.5])
    assert SAETrainConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_builds_the_matching_saelens_class(arch):
    revival = "aux" if arch in ("topk", "batchtopk", "matryoshka_batchtopk", "jumprelu") else "resample"
    cfg = SAETrainConfig(arch=arch, width=48, l0=4, revival=revival)
    sae = build_training_sae(cfg, d_in=16)
    assert sae.cfg.architecture() == arch
    assert tuple(sae.W_dec.shape) == (48, 16)


def test_same_seed_same_initial_weights_other_seed_differs():
    a = build_training_sae(SAETrainConfig(arch="topk", width=32, l0=3, seed=1), 8)
    b = build_training_sae(SAETrainConfig(arch="topk", width=32, l0=3, seed=1), 8)
    c = build_training_sae(SAETrainConfig(arch="topk", width=32, l0=3, seed=2), 8)
    assert (a.W_dec == b.W_dec).all()
    assert not (a.W_dec == c.W_dec).all()


def test_matryoshka_widths_are_increasing_and_end_at_width():
    cfg = SAETrainConfig(arch="matryoshka_batchtopk", width=100, l0=4, matryoshka_levels=[0.5, 0.1, 0.5])
    assert matryoshka_widths(cfg) == [10, 50, 100]


def test_jumprelu_threshold_trains_at_its_own_lr_and_the_others_keep_one_group():
    cfg = SAETrainConfig(arch="jumprelu", width=64, l0=4, lr=2e-3, threshold_lr_factor=5.0)
    sae = build_training_sae(cfg, 16)
    rest, threshold = parameter_groups(cfg, sae)
    assert threshold["params"] == [sae.threshold] and threshold["lr"] == pytest.approx(1e-2)
    assert "lr" not in rest and len(rest["params"]) == len(list(sae.parameters())) - 1
    assert all(p is not sae.threshold for p in rest["params"])
    for other in (cfg.with_changes(threshold_lr_factor=1.0), SAETrainConfig(arch="topk", width=64, l0=4,
                                                                            threshold_lr_factor=5.0)):
        (group,) = parameter_groups(other, build_training_sae(other, 16))
        assert "lr" not in group


def test_quadratic_jumprelu_loss_targets_the_configured_l0():
    cfg = SAETrainConfig(arch="jumprelu", width=64, l0=6, jumprelu_sparsity_loss="quadratic")
    saelens = sae_config(cfg, 16)
    assert saelens.jumprelu_sparsity_loss_mode == "quadratic" and saelens.target_l0 == 6.0


def test_new_settings_enter_the_id_only_away_from_their_old_behaviour():
    """SAEs stored before jumprelu_sparsity_loss / threshold_lr_factor existed keep their ids."""
    cfg = SAETrainConfig(arch="jumprelu", width=64, l0=4)
    assert not {"jumprelu_sparsity_loss", "threshold_lr_factor", "device"} & set(run_config(cfg, "f", "base")["train"])
    ids = {run_id(c, "f", "base") for c in (cfg, cfg.with_changes(threshold_lr_factor=5.0),
                                             cfg.with_changes(jumprelu_sparsity_loss="quadratic"))}
    assert len(ids) == 3
