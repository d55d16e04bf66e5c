"""SAELens training SAEs for the seven architectures, built from an :class:`SAETrainConfig`.

How the target L0 enters each architecture:
topk: k = l0 per sample; batchtopk / matryoshka_batchtopk: k = l0 on average over the batch;
matching_pursuit: at most l0 pursuit iterations (no residual threshold);
standard / gated (L1 coefficient "l1") and jumprelu (L0 coefficient "l0"): the coefficient is
adapted during training by :class:`featgeom.sae.control.L0Controller`.
"""

from __future__ import annotations

from typing import Any

import torch

from featgeom.sae.architectures import architecture
from featgeom.sae.config import SAETrainConfig

DEFAULT_MATRYOSHKA_LEVELS = (0.125, 0.25, 0.5)


def sae_config(cfg: SAETrainConfig, d_in: int) -> Any:
    """The SAELens ``*TrainingSAEConfig`` of ``cfg`` for inputs of dimension ``d_in``."""
    from sae_lens.registry import get_sae_training_class

    _, cfg_cls = get_sae_training_class(cfg.arch)
    common: dict[str, Any] = {"d_in": d_in, "d_sae": cfg.width, "decoder_init_norm": cfg.decoder_init_norm}
    aux = cfg.aux_coefficient if cfg.revival == "aux" else 0.0
    if cfg.arch == "topk":
        extra = {"k": int(cfg.l0), "aux_loss_coefficient": aux}
    elif cfg.arch == "batchtopk":
        extra = {"k": float(cfg.l0), "aux_loss_coefficient": aux}
    elif cfg.arch == "matryoshka_batchtopk":
        extra = {"k": float(cfg.l0), "aux_loss_coefficient": aux, "matryoshka_widths": matryoshka_widths(cfg)}
    elif cfg.arch == "jumprelu":
        extra = {"l0_coefficient": cfg.sparsity_coefficient, "jumprelu_bandwidth": cfg.jumprelu_bandwidth,
                 "jumprelu_init_threshold": cfg.jumprelu_init_threshold,
                 "jumprelu_ste_to_input": cfg.jumprelu_ste_to_input,
                 "jumprelu_sparsity_loss_mode": cfg.jumprelu_sparsity_loss, "target_l0": float(cfg.l0),
                 "pre_act_loss_coefficient": cfg.aux_coefficient if cfg.revival == "aux" else None}
    elif cfg.arch == "matching_pursuit":
        common["decoder_init_norm"] = 1.0
        extra = {"max_iterations": int(cfg.l0), "residual_threshold": 0.0}
    else:  # standard, gated
        extra = {"l1_coefficient": cfg.sparsity_coefficient}
    return cfg_cls(**common, **extra)


def coefficient_name(arch: str) -> str:
    """The SAELens coefficient the L0 controller adapts for ``arch`` ('l1' or 'l0'; a registry fact)."""
    name = architecture(arch).coefficient
    if name is None:
        raise ValueError(f"{arch} has no controlled coefficient")
    return name


def matryoshka_widths(cfg: SAETrainConfig) -> list[int]:
    """Strictly increasing nested widths ending at cfg.width (fractions rounded, duplicates dropped)."""
    levels = cfg.matryoshka_levels if cfg.matryoshka_levels is not None else DEFAULT_MATRYOSHKA_LEVELS
    widths = sorted({max(1, round(f * cfg.width)) for f in levels} - {cfg.width})
    return [*widths, cfg.width]


def parameter_groups(cfg: SAETrainConfig, sae: Any) -> list[dict[str, Any]]:
    """Adam parameter groups: every parameter at lr, and JumpReLU's threshold at lr x
    cfg.threshold_lr_factor (a group of its own only when the factor is not 1, so the other
    architectures' optimiser is unchanged)."""
    threshold = getattr(sae, "threshold", None)
    if cfg.arch != "jumprelu" or cfg.threshold_lr_factor == 1.0 or threshold is None:
        return [{"params": list(sae.parameters())}]
    rest = [p for p in sae.parameters() if p is not threshold]
    return [{"params": rest}, {"params": [threshold], "lr": cfg.lr * cfg.threshold_lr_factor}]


def build_training_sae(cfg: SAETrainConfig, d_in: int) -> Any:
    """A freshly initialised SAELens training SAE; weights depend only on (cfg, d_in) via cfg.seed."""
    from sae_lens.registry import get_sae_training_class

    sae_cls, _ = get_sae_training_class(cfg.arch)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return sae_cls(sae_config(cfg, d_in))


def encoder_rows(sae: Any) -> list[tuple[torch.nn.Parameter, int]]:
    """(parameter, latent axis) of every per-latent parameter, for resampling dead latents."""
    names = {"W_enc": 1, "W_dec": 0, "b_enc": 0, "b_gate": 0, "b_mag": 0, "r_mag": 0, "threshold": 0}
    params = dict(sae.named_parameters())
    return [(params[n], axis) for n, axis in names.items() if n in params]
