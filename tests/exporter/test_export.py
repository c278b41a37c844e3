"""The exported all-MiniLM-L6-v2 bundle: one ONNX file, manifest fields, parity with PyTorch."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from exporter.manifest import Pooling, Precision, file_sha256, load_manifest
from tests.fixtures.model import require_export_extra

pytestmark = pytest.mark.model

SHORT = "a cup of espresso"  # 7 tokens with [CLS] and [SEP]
MEDIUM = "Stainless steel chef's knife, 20 cm blade, dishwasher safe, comes in a gift box."
LONG = " ".join(["The slow cooker kept the stew warm for hours while we were out."] * 30)

# (batch size, texts): batch 32 stays short/medium, since 32 rows of 256 tokens cost ~20 s
# on a 2-core CPU and test nothing that 7 rows mixing 7 and 256 tokens do not
CASES = {
    "1-short": [SHORT],
    "1-long": [LONG],
    "7-mixed": [SHORT, LONG, MEDIUM, SHORT + " beans", LONG[:400], MEDIUM * 2, "tea"],
    "32-mixed": [(SHORT, MEDIUM, SHORT + " " + MEDIUM, "tea")[i % 4] + f" #{i}" for i in range(32)],
}


def test_bundle_files(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"model.onnx", "manifest.json", "tokenizer.json", "tokenizer_config.json"} <= names
    # one self-contained graph: no external-data side file
    assert not [n for n in names if n.endswith(".data") or n.endswith(".onnx_data")]


def test_manifest_fields(model_dir: Path) -> None:
    m = load_manifest(model_dir)
    assert m.model_name == "all-MiniLM-L6-v2"
    assert m.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert Path(m.source_path).is_dir()
    assert (m.dim, m.pooling, m.normalized, m.max_length, m.opset) == (
        384,
        Pooling.MEAN,
        True,
        256,
        17,
    )
    assert m.inputs == ["input_ids", "attention_mask"]  # BERT defaults token types to zeros
    assert m.output == "embeddings"
    assert m.tokenizer.max_length == 256 and m.tokenizer.pad_id == 0
    fp32 = m.variants[Precision.FP32]
    assert fp32.sha256 == file_sha256(model_dir / fp32.file)
    assert fp32.validated and fp32.parity is not None
    p = fp32.parity
    assert p.passed and p.threshold == 0.9999 and p.min_cosine >= 0.9999
    assert p.mean_cosine >= p.min_cosine and p.max_abs_diff < 1e-4
    assert p.batch_sizes == [1, 7, 32]
    assert min(p.lengths) <= 8 and max(p.lengths) == 256 and len(p.lengths) > 10
    assert {c.label for c in p.cases} == {"short", "long", "mixed"}
    for lib in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers"):
        assert m.versions[lib]
    assert m.created_at.startswith("20")
    assert m.model_version == f"all-MiniLM-L6-v2@{fp32.sha256[:8]}"


def test_graph_signature(model_dir: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="the export extra (onnx) is not installed")
    model = onnx.load(str(model_dir / "model.onnx"))
    assert any(o.domain in ("", "ai.onnx") and o.version == 17 for o in model.opset_import)

    def dims(value: object) -> list[object]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    inputs = {i.name: dims(i) for i in model.graph.input}
    assert inputs == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    (output,) = model.graph.output
    assert output.name == "embeddings" and dims(output) == ["batch", 384]
    ops = {n.op_type for n in model.graph.node}
    assert {"ReduceSum", "Div"} <= ops  # pooling and normalisation are inside the graph


@pytest.fixture(scope="module")
def pytorch() -> tuple[object, object]:
    """transformers' own tokenizer and model (default attention), loaded once."""
    require_export_extra()
    os.environ["HF_HUB_OFFLINE"] = "1"
    from transformers import AutoModel, AutoTokenizer

    from exporter.source import default_source_dir

    folder = str(default_source_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return tokenizer, AutoModel.from_pretrained(folder, local_files_only=True).eval()


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_matches_pytorch(model_dir: Path, pytorch: tuple[object, object], case: str) -> None:
    """Independent of the exporter: transformers' tokenizer and model, pooling written here."""
    import onnxruntime as ort
    import torch

    tokenizer, model = pytorch
    texts = CASES[case]
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="np")
    with torch.inference_mode():
        pt = {k: torch.from_numpy(v) for k, v in batch.items()}
        hidden = model(**pt).last_hidden_state
        mask = pt["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=1).numpy()
    session = ort.InferenceSession(
        str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    feeds = {k: batch[k].astype(np.int64) for k in ("input_ids", "attention_mask")}
    (out,) = session.run(["embeddings"], feeds)
    assert out.shape == (len(texts), 384)
    cos = (ref * out).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1))
    assert cos.min() >= 0.9999
    assert np.abs(ref - out).max() < 1e-4
    lengths = batch["attention_mask"].sum(1)
    if case != "32-mixed":  # the cases really span 7 to 256 tokens
        assert lengths.min() <= 8 or lengths.max() == 256
    assert lengths.min() < lengths.max() or len(texts) == 1  # padding inside the batch
