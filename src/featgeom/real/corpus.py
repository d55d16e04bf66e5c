"""Corpora -> fixed-length token windows that every compared model reads identically.

Sources (:func:`read_corpus`):

* ``"wiki"``  — the 106 English Wikipedia articles of the gensim 4.4.0 wheel's test data
  (``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``), wiki markup removed
  with ``gensim.corpora.wikicorpus.filter_wiki``; redirects and pages left empty are skipped.
* ``"news"``  — gensim's ``lee_background.cor`` (300 Australian news articles, one per line).
* ``"pydoc"`` — Python's own ``pydoc_data.topics.topics`` (the help() topics), by sorted topic name.
* a text file (one document: its whole text), a directory (every ``*.txt`` in it, sorted by name,
  one document per file), or ``"hf:NAME[@CONFIG][:SPLIT[:COLUMN]]"`` (``datasets.load_dataset``,
  split ``train`` and column ``text`` by default; for users — tests run offline).

Windows (:func:`token_windows`): documents are tokenized without special tokens, concatenated in
order with the tokenizer's EOS (else SEP) token between consecutive documents, and cut into
consecutive pieces of ``c = window - n_special`` content tokens; each piece is wrapped in the
tokenizer's own special tokens (``[CLS] ... [SEP]`` for BERT, ``<s> ... </s>`` for RoBERTa,
nothing for GPT-2 / Pythia), so every row holds exactly ``window`` ids::

    stream = doc_0 + [eos] + doc_1 + [eos] + ... ;   row_i = prefix + stream[i c : (i+1) c] + suffix

Only as many documents are tokenized as the requested windows need.
"""

from __future__ import annotations

import bz2
import functools
import hashlib
import itertools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from featgeom.errors import ConfigError, DataError

SHIPPED_CORPORA = ("wiki", "news", "pydoc")
WIKI_FILE = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
NEWS_FILE = "lee_background.cor"
SANE_MAX_LENGTH = 1_000_000  # transformers uses int(1e30) for "no limit"
TOKENIZE_BATCH = 8  # documents per tokenizer call


# ----------------------------------------------------------------------------- reading corpora

def read_corpus(source: str) -> list[str]:
    """The documents of ``source`` (see the module docstring), in a fixed order; empty or
    whitespace-only documents are dropped.  ConfigError for an unknown / unreachable source,
    DataError for one that holds no text."""
    if not isinstance(source, (str, Path)) or not str(source):
        raise ConfigError(f"source: expected a corpus name {SHIPPED_CORPORA}, a file, a directory or "
                          f"'hf:NAME[:SPLIT[:COLUMN]]', got {source!r}")
    source = str(source)
    if source in SHIPPED_CORPORA:
        docs = list(_SHIPPED[source]())
    elif source.startswith("hf:"):
        docs = _read_hf(source)
    else:
        docs = _read_path(Path(source).expanduser())
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"source: {source!r} holds no text")
    return docs


@functools.cache
def _gensim_test_file(name: str) -> Path:
    """Path of gensim's test-data file ``name`` inside the installed wheel (gensim not imported)."""
    from importlib.metadata import PackageNotFoundError, files

    try:
        entries = files("gensim") or []
    except PackageNotFoundError:
        raise ConfigError("source: the shipped corpora 'wiki' and 'news' need gensim==4.4.0 "
                          "(pip install 'featgeom[real]')") from None
    for entry in entries:
        if entry.name == name:
            path = Path(str(entry.locate()))
            if path.is_file():
                return path
    raise ConfigError(f"source: gensim is installed without its test data file {name}")


@functools.cache
def _wiki_documents() -> tuple[str, ...]:
    """Cleaned article texts of the gensim enwiki excerpt (redirects / empty pages skipped)."""
    import xml.etree.ElementTree as ET

    try:
        from gensim.corpora.wikicorpus import filter_wiki
    except ImportError:
        raise ConfigError("source: the shipped corpus 'wiki' needs gensim==4.4.0 (pip install 'featgeom[real]')") from None
    docs = []
    with bz2.open(_gensim_test_file(WIKI_FILE)) as fh:
        for _, elem in ET.iterparse(fh):
            if _local(elem.tag) != "page":
                continue
            fields = {_local(e.tag): e for e in elem.iter()}
            if "redirect" not in fields and "text" in fields:
                text = _tidy(filter_wiki(fields["text"].text or ""))
                if text:
                    docs.append(text)
            elem.clear()
    return tuple(docs)


def _local(tag: str) -> str:
    """XML tag without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


_WIKI_QUOTES = re.compile(r"'{2,}")


def _tidy(text: str) -> str:
    """Drop the bold / italic quote runs filter_wiki keeps (two or more apostrophes), strip each
    line and collapse runs of blank lines (markup removal leaves many)."""
    lines = [line.strip() for line in _WIKI_QUOTES.sub("", text).splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


@functools.cache
def _news_documents() -> tuple[str, ...]:
    """The lee_background.cor articles, one per line."""
    text = _gensim_test_file(NEWS_FILE).read_text(encoding="utf-8", errors="replace")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _pydoc_documents() -> tuple[str, ...]:
    """Python's help() topics, ordered by topic name."""
    from pydoc_data.topics import topics

    return tuple(topics[k] for k in sorted(topics))


_SHIPPED = {"wiki": _wiki_documents, "news": _news_documents, "pydoc": _pydoc_documents}


def _read_path(path: Path) -> list[str]:
    """A text file -> [its text]; a directory -> its *.txt files' texts, sorted by file name."""
    if path.is_file():
        return [_read_text(path)]
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not files:
            raise DataError(f"source: directory {path} holds no *.txt files")
        return [_read_text(p) for p in files]
    raise ConfigError(f"source: {str(path)!r} is not a shipped corpus {SHIPPED_CORPORA}, an existing file or "
                      "directory, or 'hf:NAME[:SPLIT[:COLUMN]]'")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"source: {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"source: cannot read {path} ({exc.strerror or exc})") from None


def parse_hf_source(source: str) -> tuple[str, str | None, str, str]:
    """``"hf:NAME[@CONFIG][:SPLIT[:COLUMN]]"`` -> (name, config, split, column)."""
    parts = source[3:].split(":")
    if not parts[0] or len(parts) > 3 or any(not p for p in parts):
        raise ConfigError(f"source: {source!r} is not of the form 'hf:NAME[@CONFIG][:SPLIT[:COLUMN]]'")
    name, _, config = parts[0].partition("@")
    split = parts[1] if len(parts) > 1 else "train"
    column = parts[2] if len(parts) > 2 else "text"
    return name, config or None, split, column


HF_DOCUMENTS = 20_000  # documents read from a hub dataset (streamed: OpenWebText alone is ~40 GB)


def _read_hf(source: str) -> list[str]:
    """The first HF_DOCUMENTS documents of a Hugging Face dataset column, streamed (nothing beyond
    them is downloaded); one ConfigError naming the dataset if it cannot be loaded (not
    installed, offline and not cached, no such split or column)."""
    name, config, split, column = parse_hf_source(source)
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"source: {source!r} needs the `datasets` package (pip install datasets)") from None
    try:
        data = datasets.load_dataset(name, config, split=split, streaming=True)
        columns = list(data.column_names or [])
        if columns and column not in columns:
            raise ConfigError(f"source: dataset {name!r} has no column {column!r} (columns: {columns})")
        texts = [row[column] for row in itertools.islice(data, HF_DOCUMENTS)]
    except ConfigError:
        raise
    except KeyError:
        raise ConfigError(f"source: dataset {name!r} has no column {column!r}") from None
    except Exception as exc:  # noqa: BLE001 - datasets raises many types (offline, missing, bad split)
        offline = " (HF_DATASETS_OFFLINE / HF_HUB_OFFLINE is set: only cached datasets load)" if _offline() else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"source: cannot load dataset {name!r} (config {config}, split {split!r}){offline}: "
                          f"{first}") from None
    return [t for t in texts if isinstance(t, str)]


def _offline() -> bool:
    import os

    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on")
               for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


# ----------------------------------------------------------------------------- token windows

def token_windows(tokenizer: Any, texts: Sequence[str], *, n_windows: int, window: int) -> np.ndarray:
    """int64 array (n_windows, window): the first ``n_windows`` windows of ``texts`` (see the module
    docstring for the formula).  ConfigError for a bad ``n_windows`` / ``window`` (window must leave
    room for at least one content token and be <= the tokenizer's ``model_max_length``); DataError
    for an empty corpus or one too short (the message says how many windows it holds)."""
    _check_texts(texts)
    n_windows = _positive_int(n_windows, "n_windows")
    window = _positive_int(window, "window")
    prefix, suffix = special_wrapping(tokenizer)
    content = window - len(prefix) - len(suffix)
    if content < 1:
        raise ConfigError(f"window: {window} leaves no room for content: the tokenizer adds "
                          f"{len(prefix) + len(suffix)} special tokens per window")
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < SANE_MAX_LENGTH and window > limit:
        raise ConfigError(f"window: {window} is longer than the model's maximum sequence length {limit}")
    stream = _content_stream(tokenizer, texts, need=n_windows * content)
    if stream.size == 0:
        raise DataError("texts: the corpus holds no tokens")
    available = stream.size // content
    if available < n_windows:
        raise DataError(f"n_windows: the corpus holds {stream.size} tokens = {available} windows of {window} "
                        f"tokens ({content} content + {window - content} special); asked for {n_windows}")
    body = stream[: n_windows * content].reshape(n_windows, content)
    rows = [np.asarray(prefix, dtype=np.int64).reshape(1, -1).repeat(n_windows, 0), body,
            np.asarray(suffix, dtype=np.int64).reshape(1, -1).repeat(n_windows, 0)]
    return np.ascontiguousarray(np.concatenate(rows, axis=1))


def windows_available(tokenizer: Any, texts: Sequence[str], *, window: int) -> int:
    """How many windows of length ``window`` the whole corpus ``texts`` gives."""
    _check_texts(texts)
    prefix, suffix = special_wrapping(tokenizer)
    content = _positive_int(window, "window") - len(prefix) - len(suffix)
    if content < 1:
        raise ConfigError(f"window: {window} leaves no room for content")
    return int(_content_stream(tokenizer, texts, need=None).size // content)


def special_wrapping(tokenizer: Any) -> tuple[list[int], list[int]]:
    """(prefix, suffix) ids the tokenizer puts around one sequence, e.g. ([CLS], [SEP]).

    Uses ``tokenizer.build_inputs_with_special_tokens`` where it exists (slow tokenizers);
    otherwise (transformers 5 fast tokenizers) reads the wrapping off the tokenizer's own encoding
    of a probe text with and without special tokens, and checks it against
    ``num_special_tokens_to_add()``.
    """
    build = getattr(tokenizer, "build_inputs_with_special_tokens", None)
    if callable(build):
        marker = [-7]
        wrapped = list(build(marker))
        at = wrapped.index(-7)
        return wrapped[:at], wrapped[at + 1:]
    try:
        plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
        full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    except Exception as exc:  # noqa: BLE001
        raise ConfigError(f"tokenizer: cannot encode text ({type(exc).__name__}: {exc})") from None
    for at in range(len(full) - len(plain) + 1):
        if full[at: at + len(plain)] == plain:
            prefix, suffix = full[:at], full[at + len(plain):]
            expected = getattr(tokenizer, "num_special_tokens_to_add", None)
            if callable(expected) and expected(pair=False) != len(prefix) + len(suffix):
                break
            return prefix, suffix
    raise ConfigError("tokenizer: cannot tell which special tokens it adds around a sequence")


def separator_id(tokenizer: Any) -> int | None:
    """The id put between documents: EOS, else SEP, else none."""
    for attr in ("eos_token_id", "sep_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, int):
            return value
    return None


def _content_stream(tokenizer: Any, texts: Sequence[str], need: int | None) -> np.ndarray:
    """doc_0 + [sep] + doc_1 + ... as int64, stopping once ``need`` tokens are there (all if None)."""
    sep = separator_id(tokenizer)
    pieces: list[np.ndarray] = []
    total = 0
    for ids in _tokenized(tokenizer, texts):
        if not ids:
            continue
        if pieces and sep is not None:
            pieces.append(np.array([sep], dtype=np.int64))
            total += 1
        pieces.append(np.asarray(ids, dtype=np.int64))
        total += len(ids)
        if need is not None and total >= need:
            break
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)


def _tokenized(tokenizer: Any, texts: Sequence[str]) -> Iterator[list[int]]:
    """Token ids of each document, no special tokens, tokenized TOKENIZE_BATCH documents at a time
    (``verbose=False``: long documents are cut into windows later, so the length warning is moot)."""
    for start in range(0, len(texts), TOKENIZE_BATCH):
        batch = list(texts[start: start + TOKENIZE_BATCH])
        try:
            encoded = tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"]
        except Exception as exc:  # noqa: BLE001
            raise DataError(f"texts: the tokenizer failed on documents {start}..{start + len(batch) - 1} "
                            f"({type(exc).__name__}: {exc})") from None
        yield from encoded


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, (str, bytes)):
        raise ConfigError("texts: expected a sequence of documents, got a single string")
    if not isinstance(texts, Sequence) or not all(isinstance(t, str) for t in texts):
        raise ConfigError("texts: expected a sequence of str documents")
    if not any(t.strip() for t in texts):
        raise DataError("texts: the corpus is empty")


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


# ----------------------------------------------------------------------------- identity

def corpus_id(source: str, tokenizer: Any, n_windows: int, window: int,
              texts: Sequence[str] | None = None) -> dict[str, Any]:
    """JSON-ready identity of the windows ``token_windows(tokenizer, read_corpus(source), ...)``:
    the source, sha256 of its documents (``texts`` if given, else read), the tokenizer's identity
    and the window shape."""
    docs = read_corpus(source) if texts is None else texts
    digest = hashlib.sha256()
    for doc in docs:
        data = doc.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return {"source": str(source), "documents": len(docs), "texts_sha256": digest.hexdigest(),
            "tokenizer": tokenizer_identity(tokenizer), "n_windows": int(n_windows), "window": int(window)}


def tokenizer_identity(tokenizer: Any) -> dict[str, Any]:
    """Class, size and sha256 of the vocabulary (token -> id) and special tokens of a tokenizer (its
    file location is left out: the same tokenizer elsewhere has the same identity)."""
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    specials = {k: str(v) for k, v in sorted(getattr(tokenizer, "special_tokens_map", {}).items())}
    text = json.dumps({"vocab": sorted(vocab.items(), key=lambda kv: kv[1]), "special": specials},
                      sort_keys=True, ensure_ascii=False)
    return {"class": type(tokenizer).__name__, "size": len(vocab), "sha256": hashlib.sha256(text.encode()).hexdigest()}
