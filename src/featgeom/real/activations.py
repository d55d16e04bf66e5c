"""Residual-stream activations of a real model on fixed token windows, streamed into the store.

An activation set is a content-addressed artifact ``STORE/activations-<id>``::

    config.json          {model identity, sha256 of the token ids, window shape, layers, mask policy}
    meta.json            model name, d_model, n_tokens, the chunks and their row counts
    arrays.safetensors   windows (n, L) int64, window_mask (n, L) bool (True = kept),
                         token_ids (n_tokens,) int64, positions (n_tokens, 2) int64 (window, offset)
    chunk-00000.safetensors ...  one tensor ``layer.{i}`` per layer: (rows, d_model) float32, the
                         kept positions of windows [c*W, (c+1)*W) in row-major (window, offset) order

``id = artifact_id(KIND, config, GENERATOR)``; the same model on the same token ids and layers is
found again and reused without running the model.  Kept positions: ``attention_mask == 1`` and
the token is not one of ``featgeom.real.tokens.special_ids(tokenizer)`` (BOS/EOS/CLS/SEP/PAD), so every model
reading the same ids with the same tokenizer keeps the same positions.  The model runs
``batch_size`` windows at a time and one chunk of ``chunk_windows`` windows is held in memory at a
time: peak memory ~ chunk_windows * L * d_model * len(layers) * 4 bytes (plus one batch's forward).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import featgeom
from featgeom.errors import ArtifactError, ConfigError, DataError, ShapeError
from featgeom.real.tokens import special_ids, vocab_size
from featgeom.store.artifacts import artifact_id, read_artifact, write_artifact
from featgeom.store.paths import writable_destination

KIND = "activations"
FORMAT_VERSION = 1
MASK_POLICY = "attention_mask==1 and token not in featgeom.real.tokens.special_ids(tokenizer)"


def _generator() -> str:
    from importlib.metadata import version

    return f"featgeom-{featgeom.__version__}/activations-{FORMAT_VERSION}/torch-{version('torch')}"


def chunk_name(index: int) -> str:
    """File name of chunk ``index``."""
    return f"chunk-{index:05d}.safetensors"


def layer_key(layer: int) -> str:
    """Tensor name of ``layer`` inside a chunk file."""
    return f"layer.{layer}"


@dataclass
class ActivationSet:
    """A stored activation set (see the module docstring).  ``layer(l)`` reads the rows of layer
    ``l`` of every chunk, (n_tokens, d_model) float32; ``iter_layer(l)`` yields them chunk by chunk."""

    path: Path
    id: str
    layers: tuple[int, ...]
    d_model: int
    n_tokens: int
    token_ids: np.ndarray  # (n_tokens,) int64
    positions: np.ndarray  # (n_tokens, 2) int64 (window, offset)
    model: dict[str, Any]  # the model identity (config["model"])
    model_name: str  # the model spec it came from (RealModel.name)
    windows: np.ndarray  # (n_windows, window) int64, every token read by the model
    window_mask: np.ndarray  # (n_windows, window) bool, True at kept positions
    config: dict[str, Any] = field(repr=False)
    chunk_rows: tuple[int, ...] = field(repr=False)

    @property
    def tokens_sha256(self) -> str:
        """sha256 of the token windows the set was extracted from."""
        return self.config["tokens_sha256"]

    def chunk_files(self) -> list[Path]:
        return [self.path / chunk_name(i) for i in range(len(self.chunk_rows))]

    def iter_layer(self, layer: int) -> Iterator[np.ndarray]:
        """Rows of ``layer``, one (rows_c, d_model) float32 array per chunk, in order."""
        from safetensors import SafetensorError, safe_open

        key = layer_key(self._check_layer(layer))
        for file, rows in zip(self.chunk_files(), self.chunk_rows):
            try:
                with safe_open(str(file), framework="numpy") as fh:
                    block = fh.get_tensor(key)
            except (SafetensorError, OSError) as exc:
                raise ArtifactError(f"{self.path}: {file.name} unreadable ({exc})") from None
            if block.shape != (rows, self.d_model):
                raise ArtifactError(f"{self.path}: {file.name} {key} has shape {block.shape}, "
                                    f"expected {(rows, self.d_model)}")
            yield block

    def layer(self, layer: int) -> np.ndarray:
        """(n_tokens, d_model) float32: the rows of every chunk of ``layer``, concatenated."""
        out = np.empty((self.n_tokens, self.d_model), dtype=np.float32)
        start = 0
        for block in self.iter_layer(layer):
            out[start: start + len(block)] = block
            start += len(block)
        return out

    def _check_layer(self, layer: int) -> int:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or int(layer) not in self.layers:
            raise ConfigError(f"layer: {layer!r} was not extracted; this set holds layers {list(self.layers)}")
        return int(layer)


def extract_activations(model: Any, token_ids: np.ndarray, layers: Sequence[int], store: str | Path, *,
                        batch_size: int = 8, chunk_windows: int = 64, progress: bool = False) -> ActivationSet:
    """Run ``model`` over the windows ``token_ids`` (n, L) and store the residual stream of
    ``layers`` at the kept positions; return the stored set (an existing one is reused).

    ``model`` is a :class:`featgeom.real.models.RealModel` (duck-typed: ``identity``, ``tokenizer``,
    ``n_layers``, ``d_model``, ``residual(input_ids, attention_mask, layers)``).  Everything is
    checked before the model runs: ConfigError / DataError / ShapeError naming the argument.
    """
    windows = check_token_ids(token_ids, model.tokenizer, getattr(model, "vocab_size", None))
    layers = check_layers(layers, model.n_layers)
    batch_size = _positive_int(batch_size, "batch_size")
    chunk_windows = _positive_int(chunk_windows, "chunk_windows")
    attention = attention_mask(windows, model.tokenizer)
    keep = kept_positions(windows, attention, model.tokenizer)
    config = activation_config(model, windows, layers, model.tokenizer)
    generator = _generator()
    try:
        aid = artifact_id(KIND, config, generator)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model.identity: not JSON-ready ({exc})") from None
    path = writable_destination(store, "store") / f"activations-{aid}"
    if path.exists():
        return load_activations(path)
    chunk_rows = [int(keep[s: s + chunk_windows].sum()) for s in range(0, len(windows), chunk_windows)]
    rows, cols = np.nonzero(keep)
    arrays = {"windows": windows, "window_mask": keep, "token_ids": windows[rows, cols],
              "positions": np.stack([rows, cols], axis=1).astype(np.int64)}
    meta = {"model_name": str(getattr(model, "name", "")), "d_model": int(model.d_model), "layers": layers,
            "n_tokens": int(keep.sum()), "n_windows": int(windows.shape[0]), "window": int(windows.shape[1]),
            "chunk_windows": chunk_windows, "chunk_rows": chunk_rows}

    def write_chunks(tmp: Path) -> None:
        for index, start in enumerate(range(0, len(windows), chunk_windows)):
            stop = min(start + chunk_windows, len(windows))
            _write_chunk(tmp / chunk_name(index), model, windows[start:stop], attention[start:stop],
                         keep[start:stop], layers, batch_size)
            if progress:
                print(f"activations: windows {stop}/{len(windows)} ({model_label(model)})", file=sys.stderr, flush=True)

    write_artifact(path, KIND, config, meta, arrays, generator, extra=write_chunks)
    return load_activations(path)


def _write_chunk(file: Path, model: Any, windows: np.ndarray, attention: np.ndarray, keep: np.ndarray,
                 layers: list[int], batch_size: int) -> None:
    """Run the model over one chunk of windows in batches and save its kept rows per layer (one
    preallocated (rows, d_model) buffer per layer: the chunk is held once)."""
    import torch
    from safetensors.numpy import save_file

    rows = int(keep.sum())
    blocks = {layer: np.empty((rows, int(model.d_model)), dtype=np.float32) for layer in layers}
    filled = 0
    for start in range(0, len(windows), batch_size):
        ids = torch.from_numpy(np.ascontiguousarray(windows[start: start + batch_size]))
        mask = torch.from_numpy(np.ascontiguousarray(attention[start: start + batch_size]))
        out = model.residual(ids, mask, layers)
        batch_keep = keep[start: start + batch_size]
        count = int(batch_keep.sum())
        for layer in layers:
            blocks[layer][filled: filled + count] = _kept_rows(out, layer, batch_keep, int(model.d_model))
        filled += count
        del out
    save_file({layer_key(layer): blocks[layer] for layer in layers}, str(file))


def _kept_rows(out: Any, layer: int, keep: np.ndarray, d_model: int) -> np.ndarray:
    """(k, d_model) float32 rows of ``out[layer]`` (b, L, d_model) at the True entries of ``keep``."""
    if not isinstance(out, dict) or layer not in out:
        raise ShapeError(f"model.residual: returned no tensor for layer {layer}")
    acts = out[layer]
    acts = acts.detach().to("cpu").float().numpy() if hasattr(acts, "detach") else np.asarray(acts, np.float32)
    if acts.shape != (*keep.shape, d_model):
        raise ShapeError(f"model.residual: layer {layer} has shape {tuple(acts.shape)}, "
                         f"expected {(*keep.shape, d_model)}")
    rows = acts[keep]
    if not np.isfinite(rows).all():
        raise DataError(f"model.residual: layer {layer} holds NaN or inf activations")
    return rows


def model_label(model: Any) -> str:
    return str(getattr(model, "name", "") or type(model).__name__)


# ----------------------------------------------------------------------------- checks and masks

def check_token_ids(token_ids: Any, tokenizer: Any, model_vocab: int | None = None) -> np.ndarray:
    """``token_ids`` as a C-contiguous int64 (n_windows, window) array; ShapeError unless 2-D and
    non-empty, DataError unless integer with 0 <= id < the vocabulary size (the tokenizer's, or the
    model's embedding count ``model_vocab`` when that is smaller)."""
    arr = np.asarray(token_ids)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ShapeError(f"token_ids: expected a non-empty (n_windows, window) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"token_ids: expected integer token ids, got dtype {arr.dtype}")
    vocab = vocab_size(tokenizer)
    if isinstance(model_vocab, int) and 0 < model_vocab < vocab:
        vocab = model_vocab
    low, high = int(arr.min()), int(arr.max())
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise DataError(f"token_ids: id {bad} is outside the tokenizer's vocabulary [0, {vocab})")
    return np.ascontiguousarray(arr, dtype=np.int64)


def check_layers(layers: Sequence[int], n_layers: int) -> list[int]:
    """Sorted distinct layers, each 0 <= l < n_layers; ConfigError naming ``layers`` otherwise."""
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ConfigError(f"layers: expected a list of layer indices, got {layers!r}")
    if len(layers) == 0:
        raise ConfigError("layers: no layers given")
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not 0 <= layer < n_layers:
            raise ConfigError(f"layers: {layer!r} is not a layer of this model (0 <= layer < {n_layers})")
    return sorted({int(layer) for layer in layers})


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def padding_id(tokenizer: Any) -> int | None:
    """The id treated as padding (attention 0): the tokenizer's pad id, unless it has none or that
    id doubles as BOS/EOS/SEP/CLS (GPT-2 style pad = eos, which token_windows puts between documents)."""
    pad = getattr(tokenizer, "pad_token_id", None)
    others = {getattr(tokenizer, a, None) for a in ("bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")}
    return pad if isinstance(pad, int) and pad not in others else None


def attention_mask(windows: np.ndarray, tokenizer: Any) -> np.ndarray:
    """int64 (n, L): 0 at padding (:func:`padding_id`), 1 elsewhere."""
    pad = padding_id(tokenizer)
    if pad is None:
        return np.ones(windows.shape, dtype=np.int64)
    return (windows != pad).astype(np.int64)


def kept_positions(windows: np.ndarray, attention: np.ndarray, tokenizer: Any) -> np.ndarray:
    """bool (n, L): attention 1 and the token not special (the mask policy MASK_POLICY)."""
    specials = np.array(sorted(special_ids(tokenizer)), dtype=np.int64)
    keep = (attention == 1) & ~np.isin(windows, specials)
    if not keep.any():
        raise DataError("token_ids: every position is a special or padding token; nothing to extract")
    return keep


def tokens_sha256(windows: np.ndarray) -> str:
    """sha256 of the (n, L) int64 windows: shape then little-endian bytes."""
    arr = np.ascontiguousarray(windows, dtype="<i8")
    digest = hashlib.sha256(f"{arr.shape[0]}x{arr.shape[1]}:".encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def activation_config(model: Any, windows: np.ndarray, layers: list[int], tokenizer: Any) -> dict[str, Any]:
    """The content identity of an extraction (its artifact config)."""
    device = str(getattr(model, "device", "cpu")).split(":")[0]
    return {"model": model.identity, "device": device, "tokens_sha256": tokens_sha256(windows),
            "window_shape": [int(windows.shape[0]), int(windows.shape[1])], "layers": list(layers),
            "mask": {"policy": MASK_POLICY, "special_ids": sorted(special_ids(tokenizer)),
                     "pad_id": padding_id(tokenizer)}}


# ----------------------------------------------------------------------------- loading

def load_activations(path: str | Path) -> ActivationSet:
    """Load and verify (every file's sha256, the id) a stored activation set; ArtifactError naming
    the file that is missing or corrupted."""
    path = Path(path)
    art = read_artifact(path, kind=KIND)
    try:
        meta, arrays = art.meta, art.arrays
        chunk_rows = tuple(int(r) for r in meta["chunk_rows"])
        token_ids, positions = arrays["token_ids"], arrays["positions"]
        n_tokens = int(meta["n_tokens"])
        aset = ActivationSet(path=path, id=art.id, layers=tuple(int(x) for x in art.config["layers"]),
                             d_model=int(meta["d_model"]), n_tokens=n_tokens, token_ids=token_ids,
                             positions=positions, model=art.config["model"],
                             model_name=str(meta.get("model_name", "")), windows=arrays["windows"],
                             window_mask=arrays["window_mask"], config=art.config, chunk_rows=chunk_rows)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: activation artifact is incomplete ({exc})") from None
    if sum(chunk_rows) != n_tokens or len(token_ids) != n_tokens or positions.shape != (n_tokens, 2):
        raise ArtifactError(f"{path}: activation artifact is inconsistent (chunk rows / token counts differ)")
    for file in aset.chunk_files():
        if not file.is_file():
            raise ArtifactError(f"{path}: missing {file.name}")
    return aset


def same_tokens(a: ActivationSet, b: ActivationSet, names: tuple[str, str] = ("a", "b")) -> None:
    """DataError unless ``a`` and ``b`` were extracted from the same token windows and keep the same
    positions (so their rows correspond one to one)."""
    if a.tokens_sha256 != b.tokens_sha256:
        raise DataError(f"{names[0]}, {names[1]}: activation sets were extracted from different token windows "
                        f"({a.config['window_shape']} sha256 {a.tokens_sha256[:12]} vs "
                        f"{b.config['window_shape']} sha256 {b.tokens_sha256[:12]})")
    if not np.array_equal(a.positions, b.positions):
        raise DataError(f"{names[0]}, {names[1]}: activation sets keep different positions of the same windows "
                        "(their tokenizers' special tokens differ)")
