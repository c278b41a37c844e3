"""The encoder benchmark on tiny sizes writes well-formed JSON (CPU; GPU rows are skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.encoder_bench import main

pytestmark = [pytest.mark.model, pytest.mark.slow]


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
    if not doc["gpu"]["available"]:
        assert {"onnxruntime-cuda-fp16", "pytorch-cuda-fp16"} <= skipped
