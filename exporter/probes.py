"""Probe batches for parity checks: real text cut to exact token lengths, padded like the runtime.

Parity must hold for every shape the runtime will feed: one short query, one text at the
maximum length, and batches whose rows have very different lengths (padding inside a batch
is where a wrong mask or pooling shows up).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tokenizers import Tokenizer

from inference.batching import TokenBatch

# Varied, deterministic text: plain words, numbers, punctuation, accents, a CJK phrase, an
# emoji; rotating the start sentence gives every row of a batch different content.
PROBE_SENTENCES: tuple[str, ...] = (
    "A cup of espresso brewed from freshly ground arabica beans.",
    "Stainless steel chef's knife, 20 cm blade, dishwasher safe.",
    "The garden hose kinked twice before I gave up and bought a new one.",
    "Organic green tea, 100 bags — smooth, grassy and not bitter at all.",
    "Cast-iron skillet: pre-seasoned, oven safe up to 260°C.",
    "Why does my sourdough starter smell like acetone after two days?",
    "Crème brûlée torch with adjustable flame and safety lock.",
    "Five stars!!! Arrived early, well packed, tastes great 👍",
    "日本の緑茶はとても美味しいです。",
    "Returned it: the lid cracked after a week in the freezer.",
    "Search: gluten free pasta 500g cheap",
    "Non-stick baking mat, set of 3, BPA free, fits half-sheet pans.",
)


@dataclass(frozen=True)
class ParityCase:
    """One probe batch: ``batch_size`` rows with token lengths spread over a range."""

    label: str
    batch_size: int
    min_tokens: int
    max_tokens: int

    def lengths(self) -> list[int]:
        """Token length of each row, spread evenly from min to max."""
        spread = np.linspace(self.min_tokens, self.max_tokens, self.batch_size)
        return [int(n) for n in np.round(spread)]


def default_cases(max_length: int) -> tuple[ParityCase, ...]:
    """Batch sizes 1, 7 and 32 at short, maximum and mixed lengths.

    The batch of 32 stays at moderate lengths: 32 rows at the maximum length cost ~10 s on a
    2-core CPU and test nothing the batch of 7 at the maximum does not.
    """
    short = min(8, max_length)
    return (
        ParityCase("short", 1, short, short),
        ParityCase("long", 1, max_length, max_length),
        ParityCase("mixed", 7, short, max_length),
        ParityCase("short", 32, short, short),
        ParityCase("mixed", 32, short, min(64, max_length)),
    )


def _row(tokenizer: Tokenizer, start: int, length: int) -> tuple[list[int], list[int]]:
    """Token ids of real text cut to exactly ``length`` tokens, special tokens kept."""
    sentences = PROBE_SENTENCES[start:] + PROBE_SENTENCES[:start]
    text = " ".join(sentences * 8)  # several hundred tokens: enough for any max_length
    enc = tokenizer.encode(text, add_special_tokens=True)
    if len(enc.ids) < length:
        raise ValueError(f"probe text has only {len(enc.ids)} tokens, {length} wanted")
    # keep the leading tokens and the closing special token, as truncation would
    ids = enc.ids[: length - 1] + enc.ids[-1:]
    types = enc.type_ids[: length - 1] + enc.type_ids[-1:]
    return ids, types


def build_batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> TokenBatch:
    """Right-pad token rows into a :class:`TokenBatch` (same layout the runtime feeds)."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros_like(input_ids)
    types = np.zeros_like(input_ids)
    for r, (ids, type_ids) in enumerate(rows):
        input_ids[r, : len(ids)] = ids
        mask[r, : len(ids)] = 1
        types[r, : len(ids)] = type_ids
    return TokenBatch(np.arange(len(rows)), input_ids, mask, types)


def build_probe_batches(
    tokenizer: Tokenizer, cases: Sequence[ParityCase], pad_id: int
) -> list[TokenBatch]:
    """One padded batch per case; ``tokenizer`` must truncate at the export's max_length."""
    batches = []
    for case in cases:
        rows = [
            _row(tokenizer, (i + case.batch_size) % len(PROBE_SENTENCES), n)
            for i, n in enumerate(case.lengths())
        ]
        batches.append(build_batch(rows, pad_id))
    return batches


def example_batch(tokenizer: Tokenizer, pad_id: int) -> TokenBatch:
    """A two-row batch of unequal lengths to trace the export with."""
    return build_batch([_row(tokenizer, 0, 12), _row(tokenizer, 1, 7)], pad_id)
