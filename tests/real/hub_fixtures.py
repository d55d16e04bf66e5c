"""Test models built on the spot: a tiny random GPT-NeoX (Pythia architecture) with a small BPE
tokenizer, as a plain HF folder and as a fake hub snapshot of ``EleutherAI/pythia-70m-deduped``.

Plain functions (not pytest fixtures) so any test module can call them; each takes the directory
to build in and reuses what is already there, so a session-scoped tmp dir builds them once.
The hub path must be exercised in a subprocess with ``HF_HUB_OFFLINE=1`` and ``HF_HUB_CACHE``
set (huggingface_hub reads both at import): :func:`hub_env`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

PYTHIA_ID = "EleutherAI/pythia-70m-deduped"
# A made-up commit (the sha1 of a fixed string), in the 40-hex form the hub uses.
FAKE_COMMIT = hashlib.sha1(b"featgeom fake pythia-70m-deduped snapshot").hexdigest()
ENDOFTEXT, PADDING = "<|endoftext|>", "<|padding|>"  # Pythia's special tokens (ids 0 and 1)
BPE_VOCAB = 384
NEOX_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                   max_position_embeddings=128, rotary_pct=0.25, use_parallel_residual=True,
                   bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)

# A little text written for these tests (ordinary English prose, some code and numbers), enough for
# a byte-level BPE of a few hundred tokens.
TRAINING_TEXT = """\
The river runs past the old mill and under the stone bridge, where children throw bread to the ducks.
In the morning the market opens early: farmers bring apples, pears, cheese, bread and fresh eggs.
A small dog sleeps in the sun beside the bakery door while the baker sings a song about the sea.
Scientists measure the temperature of the water every day at nine o'clock and write it in a book.
The numbers are 12, 15, 17, 21 and 30 degrees; the average of the week was 19.5 degrees.
def mean(values):
    return sum(values) / len(values)
for name in ["alpha", "beta", "gamma"]:
    print(name.upper(), len(name))
Language models read text as tokens. A tokenizer splits words into pieces that it has seen often.
The quick brown fox jumps over the lazy dog. The lazy dog does not care about the quick brown fox.
She said: "We will meet at the station at half past seven, and then we will take the train north."
Mountains, forests, lakes and cities appear on the map; the map is old, and some roads are gone.
"""


def bpe_tokenizer_dir(root: Path) -> Path:
    """``root/bpe-tokenizer``: a byte-level BPE (vocab :data:`BPE_VOCAB`, ``<|endoftext|>`` = BOS =
    EOS = UNK as in Pythia, ``<|padding|>``) trained with ``tokenizers`` on :data:`TRAINING_TEXT`,
    saved as a transformers fast tokenizer; trained once per ``root``."""
    dst = Path(root) / "bpe-tokenizer"
    if (dst / "tokenizer.json").is_file():
        return dst
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_VOCAB, special_tokens=[ENDOFTEXT, PADDING],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(TRAINING_TEXT.splitlines(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=ENDOFTEXT, eos_token=ENDOFTEXT,
                                   unk_token=ENDOFTEXT)
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    fast.save_pretrained(str(tmp))
    os.replace(tmp, dst)
    return dst


def tiny_neox_dir(root: Path, seed: int = 0) -> Path:
    """``root/tiny-neox-<seed>``: a random GPT-NeoX causal LM (hidden 64, 2 layers, 4 heads, rotary
    on a quarter of each head, parallel residual: Pythia's architecture) with the BPE tokenizer, in
    HF layout (config.json, model.safetensors, tokenizer files). Same seed, same weights."""
    dst = Path(root) / f"tiny-neox-{seed}"
    if (dst / "model.safetensors").is_file():
        return dst
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    tok_dir = bpe_tokenizer_dir(root)
    vocab = len(json.loads((tok_dir / "tokenizer.json").read_text())["model"]["vocab"])
    config = GPTNeoXConfig(vocab_size=vocab, architectures=["GPTNeoXForCausalLM"], **NEOX_CONFIG)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config).eval()
    tmp = dst.with_name(dst.name + f".tmp-{os.getpid()}")
    model.save_pretrained(str(tmp))
    for file in tok_dir.iterdir():
        shutil.copyfile(file, tmp / file.name)
    os.replace(tmp, dst)
    return dst


def fake_hub_snapshot(cache_dir: Path, model_dir: Path, repo_id: str = PYTHIA_ID,
                      commit: str = FAKE_COMMIT) -> Path:
    """Lay ``model_dir``'s files out as the hub cache does, under ``cache_dir`` (an HF_HUB_CACHE):
    ``models--org--name/refs/main`` holding ``commit``, ``blobs/<sha256>`` and
    ``snapshots/<commit>/<file>`` symlinks to the blobs. Returns the snapshot folder."""
    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    for file in sorted(Path(model_dir).iterdir()):
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        blob = repo / "blobs" / digest
        if not blob.exists():
            shutil.copyfile(file, blob)
        link = snapshot / file.name
        if not link.exists():
            link.symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def hub_env(cache_dir: Path) -> dict[str, str]:
    """Environment for a subprocess that must see only ``cache_dir`` as its hub cache, offline."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_CACHE=str(cache_dir),
               HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("HF_HOME", None)
    return env
