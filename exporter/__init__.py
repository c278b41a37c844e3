"""Hugging Face encoder → validated ONNX bundle (graph with pooling, tokenizer, manifest).

Importing this package is cheap and torch-free: the worker reads manifests through
``exporter.manifest``; torch and transformers load only when an export actually runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exporter.manifest import Manifest, load_manifest
    from exporter.onnx_export import ensure_exported, export_model

__all__ = ["Manifest", "ensure_exported", "export_model", "load_manifest"]


def __getattr__(name: str) -> Any:
    # lazy, so `import exporter.manifest` (the worker) does not load the export pipeline
    if name in ("export_model", "ensure_exported"):
        from exporter import onnx_export

        return getattr(onnx_export, name)
    if name in ("Manifest", "load_manifest"):
        from exporter import manifest

        return getattr(manifest, name)
    raise AttributeError(f"module 'exporter' has no attribute {name!r}")
