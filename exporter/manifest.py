"""The model bundle's manifest: what was exported, from where, and how well it matches PyTorch.

This module is torch-free on purpose: the worker's encoder reads the manifest at start-up and
must not pull in the export toolchain.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from inference.errors import ModelError

MANIFEST_FILE = "manifest.json"
TOKENIZER_FILE = "tokenizer.json"
# 2: the graph's output shape carries the static vector size
SCHEMA_VERSION = 2


class Precision(StrEnum):
    """The graph variants an export can hold."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Pooling(StrEnum):
    """How token states become one sentence vector (inside the graph)."""

    MEAN = "mean"
    CLS = "cls"


# Pydantic models rather than dataclasses: the manifest is a file format, so it needs
# validation on read and a stable JSON form on write; frozen keeps them value objects.
class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ParityCaseResult(_Frozen):
    """Figures for one probe batch."""

    label: str
    batch_size: int
    min_tokens: int
    max_tokens: int
    min_cosine: float


class ParityFigures(_Frozen):
    """How closely a graph reproduces the PyTorch fp32 reference on the probe batches."""

    reference: str
    provider: str
    min_cosine: float
    mean_cosine: float
    max_abs_diff: float
    threshold: float | None
    passed: bool
    batch_sizes: list[int]
    lengths: list[int]
    cases: list[ParityCaseResult]


class VariantInfo(_Frozen):
    """One ONNX file of the bundle and its validation state."""

    precision: Precision
    file: str
    sha256: str
    bytes: int
    target: str
    validated: bool
    parity: ParityFigures | None = None
    note: str | None = None
    warning: str | None = None


class TokenizerInfo(_Frozen):
    """What the runtime needs to drive ``tokenizers`` the way the export was checked."""

    file: str = TOKENIZER_FILE
    pad_id: int
    pad_token: str
    max_length: int
    sha256: str | None = None  # absent from exports made before it was recorded


class Manifest(_Frozen):
    """Everything known about one exported model bundle (``manifest.json``)."""

    schema_version: int = SCHEMA_VERSION
    model_name: str
    model_id: str
    source_path: str
    dim: int
    pooling: Pooling
    normalized: bool
    max_length: int
    opset: int
    inputs: list[str]
    output: str
    tokenizer: TokenizerInfo
    variants: dict[Precision, VariantInfo]
    versions: dict[str, str]
    created_at: str
    export_seconds: float | None = None

    @property
    def version_hash(self) -> str:
        """Short content hash of the canonical fp32 graph: equal graphs, equal version."""
        return self.variants[Precision.FP32].sha256[:8]

    @property
    def model_version(self) -> str:
        """A short, human-readable model version, e.g. ``all-MiniLM-L6-v2@1a2b3c4d``."""
        return f"{self.model_name}@{self.version_hash}"

    def write(self, folder: Path) -> Path:
        """Write ``manifest.json`` into ``folder`` and return its path."""
        path = folder / MANIFEST_FILE
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")
        return path


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (model files are ~100 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(folder: Path) -> Manifest:
    """Read and validate ``folder/manifest.json``; raise :class:`ModelError` if unusable."""
    path = Path(folder) / MANIFEST_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"{path} is missing: the folder is not an exported model") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is unreadable: {exc}") from exc
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ModelError(
            f"{path} has schema_version {raw.get('schema_version')!r}, expected "
            f"{SCHEMA_VERSION}: re-export the model (xrec model export)"
        )
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        raise ModelError(f"{path} is not a valid manifest: {exc}") from exc
    if Precision.FP32 not in manifest.variants:
        raise ModelError(f"{path} lists no fp32 graph")
    return manifest


def verify_bundle(folder: Path, *, check_hashes: bool = True) -> Manifest:
    """Load the manifest and check that every file it lists is present (and intact)."""
    folder = Path(folder)
    manifest = load_manifest(folder)
    tokenizer = folder / manifest.tokenizer.file
    if not tokenizer.is_file():
        raise ModelError(f"{tokenizer} is missing")
    # checked even when the graphs are not: a swapped vocabulary changes every vector silently
    expected = manifest.tokenizer.sha256
    if expected is not None and file_sha256(tokenizer) != expected:
        raise ModelError(f"{tokenizer} does not match the sha256 in the manifest: re-export")
    for info in manifest.variants.values():
        path = folder / info.file
        if not path.is_file():
            raise ModelError(f"{path} ({info.precision} graph) is missing")
        if check_hashes and file_sha256(path) != info.sha256:
            raise ModelError(f"{path} does not match the sha256 in the manifest")
    return manifest


def is_valid_bundle(folder: Path) -> bool:
    """True when ``folder`` holds a complete export whose files match their hashes."""
    try:
        verify_bundle(folder)
    except ModelError:
        return False
    return True
