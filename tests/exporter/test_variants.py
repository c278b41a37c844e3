"""fp16 (GPU) and int8 (CPU) graphs: built from the fp32 graph, recorded in the manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from exporter.manifest import Precision, file_sha256, load_manifest

pytestmark = pytest.mark.model

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()


def test_fp16_entry(tiny_bundle: Path) -> None:
    from exporter.variants import io_types

    fp16 = load_manifest(tiny_bundle).variants[Precision.FP16]
    assert fp16.file == "model_fp16.onnx" and fp16.target == "cuda"
    assert fp16.sha256 == file_sha256(tiny_bundle / fp16.file)
    if HAS_CUDA:
        assert fp16.validated and fp16.parity.provider == "CUDAExecutionProvider"
    else:
        assert not fp16.validated and fp16.parity is None
        assert "not validated on this machine" in fp16.note
        assert "CUDAExecutionProvider" in fp16.note
    assert "Attention" in fp16.note  # the transformer optimiser fused attention
    # float32 in and out, whatever runs inside
    assert io_types(tiny_bundle / fp16.file) == {
        "input_ids": "INT64",
        "attention_mask": "INT64",
        "embeddings": "FLOAT",
    }
    fp32_size = load_manifest(tiny_bundle).variants[Precision.FP32].bytes
    assert fp16.bytes < 0.75 * fp32_size


def test_int8_entry(tiny_bundle: Path) -> None:
    int8 = load_manifest(tiny_bundle).variants[Precision.INT8]
    assert int8.validated and int8.target == "cpu"
    p = int8.parity
    assert p is not None and p.threshold is None and p.passed  # recorded, not gated
    assert p.provider == "CPUExecutionProvider" and p.batch_sizes == [1, 7, 32]
    assert 0.5 < p.min_cosine <= p.mean_cosine <= 1.0
    assert "int8" in int8.warning and f"{p.min_cosine:.4f}" in int8.warning


def test_encoder_runs_int8_on_cpu(tiny_bundle: Path) -> None:
    from inference.encoder import TextEncoder
    from inference.model_settings import ModelSettings

    texts = ["a cup of espresso", "garden hose, 20 m", "x" * 300]
    with (
        TextEncoder(ModelSettings(dir=tiny_bundle, provider="cpu", variant="int8")) as q,
        TextEncoder(ModelSettings(dir=tiny_bundle, provider="cpu", variant="fp32")) as f,
    ):
        assert q.variant == Precision.INT8 and f.variant == Precision.FP32
        assert q.model_version == f.model_version  # one export, one vector space
        a, b = q.encode(texts), f.encode(texts)
    assert a.shape == b.shape == (3, 32)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert ((a * b).sum(1) > 0.5).all()


@pytest.mark.slow
def test_int8_of_real_model(model_dir: Path, tmp_path: Path) -> None:
    """MiniLM int8 figures (the brief measured mean ~0.97; per-channel QInt8 does better)."""
    from exporter.variants import make_int8
    from inference.batching import load_tokenizer, pad_batch, tokenize
    from tests.exporter.reference import load_reference

    make_int8(model_dir / "model.onnx", tmp_path / "model_int8.onnx")
    session = ort.InferenceSession(
        str(tmp_path / "model_int8.onnx"), providers=["CPUExecutionProvider"]
    )
    ref = load_reference()
    tokenizer = load_tokenizer(model_dir / "tokenizer.json", max_length=ref["max_length"])
    encodings = tokenize(tokenizer, ref["sentences"])
    batch = pad_batch(encodings, np.arange(len(encodings)), pad_id=0)
    (got,) = session.run(["embeddings"], batch.feeds(["input_ids", "attention_mask"]))
    cos = (got * np.asarray(ref["vectors"])).sum(1)
    assert cos.min() > 0.95, cos


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")
def test_fp16_unvalidated_when_cuda_is_listed_but_unusable(
    tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """onnxruntime lists CUDA but a session cannot use it: fp16 is recorded, not faked."""
    from exporter import onnx_export

    listed = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnx_export.ort, "get_available_providers", lambda: listed)
    if HAS_CUDA:
        pytest.skip("CUDA really works here")
    manifest = onnx_export.export_model(tiny_source, tmp_path / "b", variants=("fp16",))
    fp16 = manifest.variants[Precision.FP16]
    assert not fp16.validated and fp16.parity is None
    assert "CUDA is listed but unusable" in fp16.note
    assert manifest.variants[Precision.FP32].parity.passed
