"""``ensure_exported`` exports only when the folder holds no valid bundle.

These check the decision only, so ``export_model`` is replaced by a recorder: the export itself
(of the bundled model, about 30 s) has its own tests (test_export, test_refusal, test_variants).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import onnxruntime as ort
import pytest

from exporter import onnx_export
from exporter.manifest import is_valid_bundle


def test_reuses_a_valid_bundle(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("must not re-export a valid bundle")

    monkeypatch.setattr(onnx_export, "export_model", boom)
    assert onnx_export.ensure_exported(copy) == copy


def test_exports_when_missing_or_corrupt(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[object, Path, tuple[str, ...]]] = []

    def record(source: object, out: Path, *, variants: tuple[str, ...]) -> None:
        calls.append((source, out, tuple(variants)))

    monkeypatch.setattr(onnx_export, "export_model", record)
    missing = tmp_path / "missing"
    assert onnx_export.ensure_exported(missing) == missing
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_bundle, corrupt)
    (corrupt / "model.onnx").write_bytes(b"not a graph")
    assert not is_valid_bundle(corrupt)
    onnx_export.ensure_exported(corrupt)
    gpu = "CUDAExecutionProvider" in ort.get_available_providers()
    expected = ("fp32", "fp16") if gpu else ("fp32",)
    assert calls == [(None, missing, expected), (None, corrupt, expected)]
