"""The encoder on a CUDA GPU: fp32 and the fp16 graph, validated against PyTorch's vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from exporter.manifest import Precision, load_manifest
from inference.encoder import TextEncoder
from inference.model_settings import ModelSettings, Provider
from tests.exporter.reference import load_reference

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.model,
    pytest.mark.skipif(
        "CUDAExecutionProvider" not in ort.get_available_providers(),
        reason="onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu on a "
        "CUDA machine)",
    ),
]


def _check(enc: TextEncoder, min_cosine: float) -> None:
    ref = load_reference()
    expected = np.asarray(ref["vectors"], dtype=np.float32)
    got = enc.encode(ref["sentences"])
    assert got.dtype == np.float32
    assert ((got * expected).sum(1)).min() >= min_cosine


def test_fp32_on_cuda(model_dir: Path) -> None:
    with TextEncoder(ModelSettings(dir=model_dir, provider="cuda", variant="fp32")) as enc:
        assert enc.provider == Provider.CUDA
        _check(enc, 0.9999)


def test_fp16_export_is_validated_on_gpu(tmp_path: Path) -> None:
    from tests.fixtures.model import require_export_extra

    require_export_extra()
    from exporter.onnx_export import export_model

    out = tmp_path / "bundle"
    manifest = export_model(None, out, variants=("fp32", "fp16"))
    fp16 = manifest.variants[Precision.FP16]
    assert fp16.validated and fp16.parity.provider == "CUDAExecutionProvider"
    assert fp16.parity.min_cosine >= 0.999
    assert load_manifest(out) == manifest
    with TextEncoder(ModelSettings(dir=out, provider="auto")) as enc:
        assert enc.provider == Provider.CUDA and enc.variant == Precision.FP16
        _check(enc, 0.999)
