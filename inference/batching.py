"""Fast tokenisation and length-sorted micro-batches for the ONNX text encoder.

Padding every text to the longest one in a request wastes most of the compute when lengths
vary (a 200-token review next to 5-token queries). Sorting by length and padding each
micro-batch only to its own longest row keeps the padded area close to the real token count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from inference.errors import ModelError


@dataclass(frozen=True)
class TokenBatch:
    """One padded micro-batch and where its rows came from in the caller's input."""

    indices: np.ndarray  # int64 [b]: position of each row in the original sequence
    input_ids: np.ndarray  # int64 [b, seq]
    attention_mask: np.ndarray  # int64 [b, seq]
    token_type_ids: np.ndarray  # int64 [b, seq]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, padded length)."""
        return self.input_ids.shape[0], self.input_ids.shape[1]

    def feeds(self, names: Sequence[str]) -> dict[str, np.ndarray]:
        """The onnxruntime input dict for the graph inputs ``names``."""
        arrays = {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "token_type_ids": self.token_type_ids,
        }
        try:
            return {name: arrays[name] for name in names}
        except KeyError as exc:
            raise ModelError(f"the graph asks for an unknown input {exc}") from exc


def load_tokenizer(path: Path, *, max_length: int) -> Tokenizer:
    """Load ``tokenizer.json`` with truncation at ``max_length`` and no built-in padding.

    tokenizer.json files often carry their own fixed padding/truncation (all-MiniLM's pads
    every text to 128); both are replaced so that the export's settings rule.
    """
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on a bad file
        raise ModelError(f"{path} is not a valid tokenizer.json: {exc}") from exc
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_length)
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> list[Encoding]:
    """Batch-encode ``texts`` (special tokens added, truncated as the tokenizer is set)."""
    return tokenizer.encode_batch(list(texts), add_special_tokens=True)


def pad_batch(encodings: Sequence[Encoding], indices: np.ndarray, pad_id: int) -> TokenBatch:
    """Right-pad ``encodings`` to their longest row."""
    rows = len(encodings)
    width = max((len(e.ids) for e in encodings), default=0)
    input_ids = np.full((rows, width), pad_id, dtype=np.int64)
    attention_mask = np.zeros((rows, width), dtype=np.int64)
    token_type_ids = np.zeros((rows, width), dtype=np.int64)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        input_ids[row, :n] = enc.ids
        attention_mask[row, :n] = 1
        token_type_ids[row, :n] = enc.type_ids
    return TokenBatch(
        indices=np.asarray(indices, dtype=np.int64),
        input_ids=input_ids,
        attention_mask=attention_mask,
        token_type_ids=token_type_ids,
    )


def length_sorted_batches(
    encodings: Sequence[Encoding], batch_size: int, pad_id: int
) -> Iterator[TokenBatch]:
    """Yield micro-batches of at most ``batch_size`` rows, grouped by token length."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
    # stable, so equal-length texts keep their relative order (deterministic batches)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield pad_batch([encodings[i] for i in idx], idx, pad_id)
