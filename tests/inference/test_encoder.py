"""TextEncoder on the CPU: shapes, order, batching invariance, norms, semantics, async."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from inference.encoder import TextEncoder
from inference.model_settings import ModelSettings, Provider

pytestmark = pytest.mark.model

# very different lengths, deliberately not sorted: batching reorders, output must not
TEXTS = [
    " ".join(["A long review about a slow cooker that kept the stew warm all day."] * 25),
    "tea",
    "Stainless steel chef's knife with a 20 cm blade, dishwasher safe.",
    "",
    "coffee beans",
    " ".join(["Organic green tea, smooth and grassy."] * 6),
    "garden hose",
    "日本の緑茶",
]


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_identity(encoder: TextEncoder) -> None:
    assert encoder.dim == 384
    assert encoder.provider == Provider.CPU
    assert re.fullmatch(r"all-MiniLM-L6-v2@[0-9a-f]{8}", encoder.model_version)
    assert encoder.max_length == 256


def test_shape_dtype_and_unit_norm(encoder: TextEncoder) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input(encoder: TextEncoder) -> None:
    empty = encoder.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_single_string_is_rejected(encoder: TextEncoder) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        encoder.encode("coffee")  # type: ignore[arg-type]


def test_order_and_batching_match_one_by_one(encoder: TextEncoder, model_dir: Path) -> None:
    together = encoder.encode(TEXTS)
    one_by_one = np.vstack([encoder.encode([t]) for t in TEXTS])
    # rows padded next to a 300-token neighbour must equal the same text encoded alone
    assert np.abs(together - one_by_one).max() < 1e-5
    with TextEncoder(ModelSettings(dir=model_dir, provider="cpu", batch_size=3)) as small:
        assert np.abs(small.encode(TEXTS) - together).max() < 1e-5
    shuffled = [7, 3, 0, 5, 1, 6, 2, 4]
    again = encoder.encode([TEXTS[i] for i in shuffled])
    assert np.abs(again - together[shuffled]).max() < 1e-5


def test_truncates_to_max_length(encoder: TextEncoder) -> None:
    head = " ".join(f"word{i}" for i in range(400))
    a, b = encoder.encode([head, head + " and then a completely different ending"])
    assert np.abs(a - b).max() < 1e-6  # everything past 256 tokens is cut


def test_semantic_sanity(encoder: TextEncoder) -> None:
    espresso, beans, hose, tea = encoder.encode(
        ["a cup of espresso coffee", "coffee beans", "garden hose", "a pot of green tea"]
    )
    assert _cos(espresso, beans) > _cos(espresso, hose) + 0.2
    assert _cos(espresso, tea) > _cos(espresso, hose)


def test_encode_async_runs_off_the_event_loop(
    encoder: TextEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    real = TextEncoder.encode

    def spy(self: TextEncoder, texts: list[str]) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return real(self, texts)

    monkeypatch.setattr(TextEncoder, "encode", spy)

    async def main() -> tuple[np.ndarray, np.ndarray]:
        return await asyncio.gather(
            encoder.encode_async(["coffee beans", "tea"]), encoder.encode_async(("tea",))
        )

    first, second = asyncio.run(main())
    assert first.shape == (2, 384) and second.shape == (1, 384)
    assert np.abs(first[1] - second[0]).max() < 1e-5
    assert threads and all(name.startswith("text-encoder") for name in threads)
