"""The encoder benchmark on tiny sizes writes well-formed JSON (CPU; GPU rows are skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.encoder_backends import Backend
from bench.encoder_bench import int8_agreement, main


@pytest.mark.model
@pytest.mark.slow
def test_encoder_bench_tiny(model_dir: Path, tmp_path: Path) -> None:
    argv = ["--model-dir", str(model_dir), "--out-dir", str(tmp_path), "--no-torch-cpu"]
    argv += ["--batch", "1", "--batch", "4", "--bucket", "short", "--bucket", "long"]
    argv += ["--min-s", "0", "--min-calls", "1"]
    assert main(argv) == 0
    (path,) = tmp_path.glob("encoder-*.json")
    doc = json.loads(path.read_text())
    assert doc["benchmark"] == "encoder" and doc["date"]
    assert path.name == f"encoder-{doc['device']}.json"
    rows = doc["rows"]
    assert {(r["bucket"], r["batch"]) for r in rows} == {
        ("short", 1),
        ("short", 4),
        ("long", 1),
        ("long", 4),
    }
    for r in rows:
        assert r["backend"] == "onnxruntime-cpu-fp32" and r["texts_per_s"] > 0
        assert r["latency_p50_ms"] > 0 and r["calls"] >= 1
    long_tokens = {r["tokens_mean"] for r in rows if r["bucket"] == "long"}
    assert all(120 <= t <= 136 for t in long_tokens)
    assert all(r["tokens_max"] <= 32 for r in rows if r["bucket"] == "short")
    skipped = {s["backend"] for s in doc["skipped"]}
    assert "pytorch-cpu-fp32" in skipped
    # the test model is exported without int8: said so, with the fix
    assert "onnxruntime-cpu-int8" in skipped and doc["int8_vs_fp32"] is None
    if not doc["gpu"]["available"]:
        assert {"onnxruntime-cuda-fp16", "pytorch-cuda-fp16"} <= skipped


@pytest.mark.slow
def test_an_int8_graph_gets_rows_and_its_agreement_with_fp32(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    argv = ["--model-dir", str(tiny_bundle), "--out-dir", str(tmp_path), "--no-torch-cpu"]
    argv += ["--batch", "4", "--bucket", "short", "--min-s", "0", "--min-calls", "1"]
    assert main(argv) == 0
    doc = json.loads(next(tmp_path.glob("encoder-*.json")).read_text())
    assert {r["backend"] for r in doc["rows"]} == {"onnxruntime-cpu-fp32", "onnxruntime-cpu-int8"}
    agreement = doc["int8_vs_fp32"]
    assert agreement["texts"] >= agreement["queries"] > 0
    assert -1 <= agreement["min_cosine"] <= agreement["mean_cosine"] <= 1.0001
    assert 0 <= agreement["top10_neighbours_shared"] <= 1


def _fixed(name: str, vectors: np.ndarray) -> Backend:
    # vectors stand in for a model's: this tests the agreement arithmetic alone
    return Backend(name, lambda texts: vectors[: len(texts)])


def test_int8_agreement_is_one_for_the_same_vectors_and_drops_with_noise() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 16)).astype(np.float32)
    texts = [str(i) for i in range(300)]
    same = int8_agreement(_fixed("a", a), _fixed("b", a.copy()), texts, queries=50)
    assert same == {
        "texts": 300,
        "queries": 50,
        "min_cosine": 1.0,
        "mean_cosine": 1.0,
        "top10_neighbours_shared": 1.0,
    }
    noisy = a + 0.5 * rng.standard_normal(a.shape).astype(np.float32)
    worse = int8_agreement(_fixed("a", a), _fixed("b", noisy), texts, queries=50)
    assert worse["mean_cosine"] < 0.95 and worse["top10_neighbours_shared"] < 0.9
