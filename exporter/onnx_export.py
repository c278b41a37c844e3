"""Export a Hugging Face encoder folder to a validated ONNX bundle (graph, tokenizer, manifest).

The bundle is built in a temporary sibling folder and renamed into place only when the fp32
graph matches PyTorch: a failed export leaves the previous model (or nothing) behind.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort

from exporter import parity, probes
from exporter import variants as derived
from exporter.manifest import (
    MANIFEST_FILE,
    TOKENIZER_FILE,
    Manifest,
    ParityFigures,
    Precision,
    TokenizerInfo,
    VariantInfo,
    file_sha256,
    is_valid_bundle,
)
from exporter.source import SourceModel, copy_tokenizer_files, default_source_dir, inspect_source
from inference.batching import TokenBatch, load_tokenizer
from inference.errors import ConfigError, ParityError, ProviderUnavailableError

log = logging.getLogger(__name__)

DEFAULT_OUT = Path("models/all-MiniLM-L6-v2")
OPSET = 17
FP32_FILE = "model.onnx"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
DEFAULT_VARIANTS = (Precision.FP32, Precision.FP16)


def _versions(extra: dict[str, str]) -> dict[str, str]:
    versions = dict(extra)
    for dist in ("onnx", "onnxruntime", "onnxruntime-gpu", "tokenizers", "numpy", "xrec"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _variant_info(
    folder: Path, name: str, precision: Precision, target: str, **fields: object
) -> VariantInfo:
    path = folder / name
    return VariantInfo(
        precision=precision,
        file=name,
        sha256=file_sha256(path),
        bytes=path.stat().st_size,
        target=target,
        **fields,
    )


def _check_target(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MANIFEST_FILE).is_file():
        raise ConfigError(
            f"--out {out_dir} is a non-empty folder without {MANIFEST_FILE}: refusing to replace "
            "something that is not a model export; choose another --out or empty it"
        )


def _replace_dir(built: Path, out_dir: Path) -> None:
    """Move ``built`` to ``out_dir``; an existing export is swapped out, then deleted."""
    if not out_dir.exists():
        os.replace(built, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old / "bundle")
    os.replace(built, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _fp16_entry(
    folder: Path,
    source: SourceModel,
    batches: Sequence[TokenBatch],
    cases: Sequence[probes.ParityCase],
    reference: Sequence[np.ndarray],
) -> VariantInfo:
    fused = derived.make_fp16(folder / FP32_FILE, folder / derived.FP16_FILE, source)
    fused_note = f"fused: {', '.join(fused) or 'none'}"

    def unvalidated(reason: str) -> VariantInfo:
        return _variant_info(
            folder,
            derived.FP16_FILE,
            Precision.FP16,
            "cuda",
            validated=False,
            note=f"{reason}; {fused_note}",
        )

    if CUDA_EP not in ort.get_available_providers():
        return unvalidated(derived.FP16_NOT_VALIDATED)
    try:
        figures = parity.check_graph(
            folder / derived.FP16_FILE,
            batches,
            cases,
            reference,
            providers=(CUDA_EP, CPU_EP),
            threshold=parity.FP16_MIN_COSINE,
        )
    except ProviderUnavailableError as exc:
        # CUDA listed but unusable (a missing CUDA library): record why, do not fail fp32
        log.warning("fp16 graph not validated: %s", exc)
        return unvalidated(f"not validated: CUDA is listed but unusable here ({exc})")
    _gate(Precision.FP16, figures)
    return _variant_info(
        folder,
        derived.FP16_FILE,
        Precision.FP16,
        "cuda",
        validated=True,
        parity=figures,
        note=fused_note,
    )


def _gate(precision: Precision, figures: ParityFigures) -> None:
    if not figures.passed:
        worst = min(figures.cases, key=lambda c: c.min_cosine)
        raise ParityError(
            f"{precision} graph fails parity with PyTorch on {figures.provider}: min cosine "
            f"{figures.min_cosine:.6f} < {figures.threshold} (worst: {worst.label} batch "
            f"{worst.batch_size}, {worst.min_tokens}-{worst.max_tokens} tokens); "
            "nothing was written"
        )


def _build(
    source: SourceModel, folder: Path, wanted: set[Precision], opset: int, min_cosine: float
) -> Manifest:
    from exporter import graph  # torch and transformers: only when exporting

    started = time.perf_counter()
    copy_tokenizer_files(source.path, folder)
    tokenizer = load_tokenizer(folder / TOKENIZER_FILE, max_length=source.max_length)
    model = graph.load_model(source)
    inputs = graph.graph_inputs(model)
    module = graph.PooledEncoder(model, source.pooling, inputs)
    graph.export_onnx(
        module,
        folder / FP32_FILE,
        example=probes.example_batch(tokenizer, source.pad_id),
        inputs=inputs,
        opset=opset,
        dim=source.hidden_size,
    )
    log.info("traced %s in %.1fs", source.path, time.perf_counter() - started)

    cases = probes.default_cases(source.max_length)
    batches = probes.build_probe_batches(tokenizer, cases, source.pad_id)
    reference = graph.torch_reference(module, batches)
    dim = int(reference[0].shape[1])
    fp32 = parity.check_graph(folder / FP32_FILE, batches, cases, reference, threshold=min_cosine)
    _gate(Precision.FP32, fp32)
    log.info(
        "fp32 parity in %.1fs: min cosine %.7f, max |diff| %.2g",
        time.perf_counter() - started,
        fp32.min_cosine,
        fp32.max_abs_diff,
    )
    entries = {
        Precision.FP32: _variant_info(
            folder, FP32_FILE, Precision.FP32, "cpu, cuda", validated=True, parity=fp32
        )
    }
    if Precision.FP16 in wanted:
        entries[Precision.FP16] = _fp16_entry(folder, source, batches, cases, reference)
    if Precision.INT8 in wanted:
        derived.make_int8(folder / FP32_FILE, folder / derived.INT8_FILE)
        figures = parity.check_graph(
            folder / derived.INT8_FILE, batches, cases, reference, threshold=None
        )
        entries[Precision.INT8] = _variant_info(
            folder,
            derived.INT8_FILE,
            Precision.INT8,
            "cpu",
            validated=figures.passed,  # finite output; its agreement is the warning's
            parity=figures,
            warning=derived.int8_warning(figures.min_cosine, figures.mean_cosine),
        )
    manifest = Manifest(
        model_name=source.name,
        model_id=source.model_id,
        source_path=str(source.path),
        dim=dim,
        pooling=source.pooling,
        normalized=True,
        max_length=source.max_length,
        opset=opset,
        inputs=inputs,
        output=graph.OUTPUT_NAME,
        tokenizer=TokenizerInfo(
            pad_id=source.pad_id,
            pad_token=source.pad_token,
            max_length=source.max_length,
            sha256=file_sha256(folder / TOKENIZER_FILE),
        ),
        variants=entries,
        versions=_versions(graph.library_versions()),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        export_seconds=round(time.perf_counter() - started, 2),
    )
    manifest.write(folder)
    return manifest


def export_model(
    source_dir: Path | None,
    out_dir: Path,
    *,
    variants: Iterable[Precision | str] = DEFAULT_VARIANTS,
    max_length: int | None = None,
    opset: int = OPSET,
    min_cosine: float = parity.FP32_MIN_COSINE,
) -> Manifest:
    """Export ``source_dir`` (default: the bundled all-MiniLM-L6-v2) into ``out_dir``.

    The fp32 graph is always built and must reach ``min_cosine`` against PyTorch, otherwise
    :class:`ParityError` is raised and ``out_dir`` is left as it was. ``variants`` may add
    ``fp16`` (validated only where CUDA is available) and ``int8`` (parity recorded, not gated).
    """
    wanted = {Precision(v) for v in variants} | {Precision.FP32}
    source = inspect_source(
        Path(source_dir) if source_dir else default_source_dir(), max_length=max_length
    )
    out_dir = Path(out_dir)
    _check_target(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    # a sibling of out_dir, so the final rename stays on one filesystem (atomic)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    building.chmod(0o755)  # mkdtemp makes it owner-only; the bundle is meant to be shared
    try:
        manifest = _build(source, building, wanted, opset, min_cosine)
        _replace_dir(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    log.info("exported %s to %s", manifest.model_version, out_dir)
    return manifest


def ensure_exported(
    out_dir: Path = DEFAULT_OUT, *, variants: Iterable[Precision | str] | None = None
) -> Path:
    """Return ``out_dir``, exporting the bundled model into it unless it holds a valid export.

    Without ``variants``: fp32, plus fp16 when this onnxruntime can run CUDA.
    """
    out_dir = Path(out_dir)
    if is_valid_bundle(out_dir):
        return out_dir
    if variants is None:
        gpu = CUDA_EP in ort.get_available_providers()
        variants = (Precision.FP32, Precision.FP16) if gpu else (Precision.FP32,)
    export_model(None, out_dir, variants=variants)
    return out_dir
