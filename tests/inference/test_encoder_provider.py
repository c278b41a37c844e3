"""Provider and variant choice: never a silent CPU run when CUDA was asked for."""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from exporter.manifest import Precision
from inference import encoder as encoder_module
from inference.encoder import TextEncoder
from inference.errors import ConfigError, ModelError, ProviderUnavailableError
from inference.model_settings import ModelSettings, Provider, Variant

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
no_gpu_here = pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("MODEL_PROVIDER", "cpu")
    monkeypatch.setenv("MODEL_VARIANT", "int8")
    monkeypatch.setenv("MODEL_BATCH_SIZE", "8")
    monkeypatch.setenv("MODEL_MAX_LENGTH", "64")
    monkeypatch.setenv("MODEL_INTRA_OP_THREADS", "2")
    s = ModelSettings()
    assert (s.dir, s.provider, s.variant) == (tmp_path, Provider.CPU, Variant.INT8)
    assert (s.batch_size, s.max_length, s.intra_op_threads) == (8, 64, 2)


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DIR", "PROVIDER", "VARIANT", "BATCH_SIZE", "MAX_LENGTH", "INTRA_OP_THREADS"):
        monkeypatch.delenv(f"MODEL_{name}", raising=False)
    s = ModelSettings()
    assert s.dir == Path("models/all-MiniLM-L6-v2")
    assert (s.provider, s.variant, s.batch_size, s.max_length, s.intra_op_threads) == (
        Provider.AUTO,
        Variant.AUTO,
        64,
        None,
        0,
    )


def test_missing_model_dir_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        TextEncoder(ModelSettings(dir=tmp_path / "nope", provider="cpu"))
    assert "MODEL_DIR" in str(err.value) and "xrec model export" in str(err.value)


@pytest.mark.model
@no_gpu_here
def test_cuda_without_gpu_raises(model_dir: Path) -> None:
    with pytest.raises(ProviderUnavailableError, match="MODEL_PROVIDER=cuda"):
        TextEncoder(ModelSettings(dir=model_dir, provider="cuda"))


@pytest.mark.model
def test_cuda_listed_but_session_falls_back(
    tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """onnxruntime lists CUDA but the session ends up on the CPU (missing CUDA library)."""

    class CpuOnlySession(ort.InferenceSession):
        def __init__(self, path: str, sess_options: object, providers: list[str]) -> None:
            super().__init__(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    fake_ort = type("FakeOrt", (), {})()
    fake_ort.get_available_providers = lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    fake_ort.InferenceSession = CpuOnlySession
    fake_ort.SessionOptions = ort.SessionOptions
    monkeypatch.setattr(encoder_module, "ort", fake_ort)

    with pytest.raises(ProviderUnavailableError, match="runs on"):
        TextEncoder(ModelSettings(dir=tiny_bundle, provider="cuda"))
    # auto accepts the CPU, loudly, and switches to the CPU's graph (fp32, not fp16)
    with TextEncoder(ModelSettings(dir=tiny_bundle, provider="auto")) as enc:
        assert enc.provider == Provider.CPU and enc.variant == Precision.FP32
    assert "unusable" in caplog.text


@pytest.mark.model
def test_cpu_and_auto(model_dir: Path) -> None:
    with TextEncoder(ModelSettings(dir=model_dir, provider="cpu")) as cpu:
        assert cpu.provider == Provider.CPU and cpu.variant == Precision.FP32
    with TextEncoder(ModelSettings(dir=model_dir, provider="auto")) as auto:
        assert auto.provider == (Provider.CUDA if HAS_CUDA else Provider.CPU)


@pytest.mark.model
def test_variant_missing_from_bundle(model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="MODEL_VARIANT=int8"):
        TextEncoder(ModelSettings(dir=model_dir, provider="cpu", variant="int8"))


@pytest.mark.model
def test_max_length_above_export(model_dir: Path) -> None:
    with pytest.raises(ConfigError, match="MODEL_MAX_LENGTH=300"):
        TextEncoder(ModelSettings(dir=model_dir, provider="cpu", max_length=300))
    with TextEncoder(ModelSettings(dir=model_dir, provider="cpu", max_length=16)) as short:
        assert short.max_length == 16
        # shorter cuts give other vectors: not the version a bundle was fitted with
        assert short.model_version == f"{short.manifest.model_version}-len16"


@pytest.mark.model
def test_a_swapped_tokenizer_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    with TextEncoder(ModelSettings(dir=copy, provider="cpu")) as enc:
        assert enc.manifest.tokenizer.sha256 is not None
        assert enc.model_version == enc.manifest.model_version
    tokenizer = copy / "tokenizer.json"
    tokenizer.write_text(tokenizer.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(ModelError, match=r"tokenizer\.json does not match"):
        TextEncoder(ModelSettings(dir=copy, provider="cpu"))


@pytest.mark.model
def test_corrupt_graph_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="sha256"):
        TextEncoder(ModelSettings(dir=copy, provider="cpu"))


@pytest.mark.model
def test_an_unvalidated_fp16_graph_is_served_only_where_it_agrees_with_fp32(
    tiny_bundle: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An export without a GPU leaves its fp16 graph unvalidated. Where ``auto``
    picks it (on CUDA) it is first compared with fp32 on the same provider; the check is run
    here on the CPU, which runs the fp16 graph too (the GPU path is the same code)."""
    from inference.encoder import CPU_EP, FP16_MIN_COSINE

    with TextEncoder(ModelSettings(dir=tiny_bundle, provider="cpu")) as enc:
        assert not enc.manifest.variants[Precision.FP16].validated
        fp16 = enc._session_for(Precision.FP16, [CPU_EP])
        fp32 = enc._session_for(Precision.FP32, [CPU_EP])
        assert enc.agreement(fp16, fp32) >= FP16_MIN_COSINE
        assert enc._checked_fp16(fp16, Precision.FP16, [CPU_EP]) == (fp16, Precision.FP16)
        # a broken conversion: one weight matrix of the fp16 graph zeroed
        broken = ort.InferenceSession(
            str(_zero_largest_weight(tiny_bundle / "model_fp16.onnx", tmp_path)),
            providers=[CPU_EP],
        )
        assert enc.agreement(broken, fp32) < FP16_MIN_COSINE
        session, precision = enc._checked_fp16(broken, Precision.FP16, [CPU_EP])
        assert precision == Precision.FP32 and session is not broken
        assert "disagrees with fp32" in caplog.text
    # asked for by name, it is served as asked
    with TextEncoder(ModelSettings(dir=tiny_bundle, provider="cpu", variant="fp16")) as named:
        assert named._checked_fp16(broken, Precision.FP16, [CPU_EP]) == (broken, Precision.FP16)


def _zero_largest_weight(graph: Path, folder: Path) -> Path:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    zeroed = numpy_helper.from_array(np.zeros_like(numpy_helper.to_array(largest)), largest.name)
    largest.CopyFrom(zeroed)
    out = folder / "broken_fp16.onnx"
    onnx.save(model, str(out))
    return out
