"""The exporter refuses to write a graph that does not match PyTorch, and leaves nothing behind."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from exporter.manifest import file_sha256, load_manifest
from exporter.parity import compare
from exporter.probes import ParityCase
from inference.errors import ParityError

pytestmark = pytest.mark.model


def _mask_blind_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the exporter trace a realistic bug: mean pooling that ignores the padding mask.

    The PyTorch reference still pools correctly, so only padded rows (mixed-length batches)
    can tell the two apart; a parity check at batch size 1 alone would pass this graph.
    """
    import torch
    import torch.nn.functional as F

    from exporter import graph

    real_export = graph.export_onnx

    class MaskBlind(torch.nn.Module):
        def __init__(self, inner: graph.PooledEncoder) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.inner.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            return F.normalize(hidden.mean(dim=1), p=2.0, dim=1)

    def export_bug(module: graph.PooledEncoder, path: Path, **kwargs: object) -> None:
        real_export(MaskBlind(module), path, **kwargs)

    monkeypatch.setattr(graph, "export_onnx", export_bug)


def _leftovers(parent: Path) -> list[str]:
    return [p.name for p in parent.iterdir() if ".building-" in p.name or ".old-" in p.name]


def test_tiny_model_exports(tiny_bundle: Path) -> None:
    """Any local Hugging Face folder works, not only the bundled model."""
    m = load_manifest(tiny_bundle)
    assert m.dim == 32 and m.max_length == 128
    assert m.model_name.startswith("tiny-bert")
    assert m.variants["fp32"].parity.min_cosine >= 0.9999
    assert _leftovers(tiny_bundle.parent) == []


def test_refuses_on_parity_failure(
    tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.onnx_export import export_model

    _mask_blind_export(monkeypatch)
    out = tmp_path / "bundle"
    with pytest.raises(ParityError, match=r"min cosine .* < 0\.9999.*mixed") as err:
        export_model(tiny_source, out, variants=("fp32",))
    assert "nothing was written" in str(err.value)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp folder left either


def test_failed_reexport_keeps_previous_model(
    tiny_source: Path, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from exporter.onnx_export import export_model

    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    good = load_manifest(out)
    _mask_blind_export(monkeypatch)
    with pytest.raises(ParityError):
        export_model(tiny_source, out, variants=("fp32",))
    assert load_manifest(out) == good
    assert file_sha256(out / "model.onnx") == good.variants["fp32"].sha256
    assert _leftovers(tmp_path) == []


def test_refuses_to_replace_a_foreign_folder(tiny_source: Path, tmp_path: Path) -> None:
    from exporter.onnx_export import export_model
    from inference.errors import ConfigError

    (tmp_path / "precious.txt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a model export"):
        export_model(tiny_source, tmp_path, variants=("fp32",))
    assert (tmp_path / "precious.txt").read_text() == "not a model"


def test_compare_gates_and_catches_nan() -> None:
    case = ParityCase("mixed", 3, 8, 16)
    ref = np.eye(3, 4, dtype=np.float32)
    close = ref + np.float32(1e-6)
    ok = compare([ref], [close], [case], provider="cpu", threshold=0.9999)
    assert ok.passed and ok.min_cosine > 0.9999 and ok.lengths == [8, 12, 16]
    rotated = ref.copy()
    rotated[2] = [0, 0, 0.99, 0.141]  # cosine ~0.99 on one row
    bad = compare([ref], [rotated], [case], provider="cpu", threshold=0.9999)
    assert not bad.passed and bad.cases[0].min_cosine < 0.9999
    nan = ref.copy()
    nan[1] = np.nan
    assert not compare([ref], [nan], [case], provider="cpu", threshold=0.9).passed
    # without a threshold: agreement is only recorded, but NaN output still fails
    ungated = compare([ref], [rotated], [case], provider="cpu", threshold=None)
    assert ungated.passed and ungated.min_cosine < 0.9999 and ungated.threshold is None
    ungated_nan = compare([ref], [nan], [case], provider="cpu", threshold=None)
    assert not ungated_nan.passed and ungated_nan.max_abs_diff == float("inf")
