"""Parity of an ONNX graph against the PyTorch fp32 reference, run with onnxruntime.

torch-free: the reference vectors come in as numpy arrays, so the same check serves the
exporter (fresh reference) and the GPU tests (stored reference).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from exporter.manifest import ParityCaseResult, ParityFigures
from exporter.probes import ParityCase
from inference.batching import TokenBatch
from inference.errors import ModelError, ProviderUnavailableError

FP32_MIN_COSINE = 0.9999
# fp16 arithmetic cannot reach the fp32 gate; 0.9997 was measured on an H100
FP16_MIN_COSINE = 0.999
REFERENCE = "pytorch-fp32"


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows (computed in float64)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(axis=1) / np.maximum(norms, 1e-30)


def run_graph(
    path: Path, batches: Sequence[TokenBatch], providers: Sequence[str]
) -> tuple[list[np.ndarray], str]:
    """Run an ONNX file on the batches; return outputs and the provider really used."""
    session = ort.InferenceSession(str(path), providers=list(providers))
    used = session.get_providers()[0]
    if used != providers[0]:
        # onnxruntime falls back to the CPU silently; a GPU parity figure taken on the CPU
        # would be a lie, so refuse
        raise ProviderUnavailableError(f"{path} asked for {providers[0]} but got {used}")
    names = [i.name for i in session.get_inputs()]
    outputs = [session.run(None, b.feeds(names))[0].astype(np.float32) for b in batches]
    return outputs, used


def compare(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    cases: Sequence[ParityCase],
    *,
    provider: str,
    threshold: float | None,
) -> ParityFigures:
    """Parity figures of ``candidate`` against ``reference``, batch by batch."""
    if len(reference) != len(candidate) or len(reference) != len(cases):
        raise ModelError("parity: reference, candidate and cases differ in count")
    results, all_cos, max_abs = [], [], 0.0
    for ref, cand, case in zip(reference, candidate, cases, strict=True):
        if ref.shape != cand.shape:
            raise ModelError(f"parity: {case.label} shapes differ: {ref.shape} vs {cand.shape}")
        cos = row_cosines(ref, cand)
        all_cos.append(cos)
        diff = float(np.abs(ref - cand).max())
        # max() keeps the old value against NaN: a NaN output must show as an infinite gap
        max_abs = max(max_abs, diff) if np.isfinite(diff) else float("inf")
        results.append(
            ParityCaseResult(
                label=case.label,
                batch_size=case.batch_size,
                min_tokens=case.min_tokens,
                max_tokens=case.max_tokens,
                min_cosine=round(float(cos.min()), 8),
            )
        )
    cosines = np.concatenate(all_cos)
    # NaN compares false: a graph emitting NaN must fail, not slip past min()
    min_cos = float(np.nan_to_num(cosines, nan=-1.0).min())
    return ParityFigures(
        reference=REFERENCE,
        provider=provider,
        min_cosine=round(min_cos, 8),
        mean_cosine=round(float(np.nan_to_num(cosines, nan=-1.0).mean()), 8),
        max_abs_diff=float(f"{max_abs:.3g}") if np.isfinite(max_abs) else float("inf"),
        threshold=threshold,
        # without a threshold (int8: recorded, not gated) a graph still fails on NaN or inf
        passed=bool(np.isfinite(cosines).all()) and (threshold is None or min_cos >= threshold),
        batch_sizes=sorted({c.batch_size for c in cases}),
        lengths=sorted({n for c in cases for n in c.lengths()}),
        cases=results,
    )


def check_graph(
    path: Path,
    batches: Sequence[TokenBatch],
    cases: Sequence[ParityCase],
    reference: Sequence[np.ndarray],
    *,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threshold: float | None = FP32_MIN_COSINE,
) -> ParityFigures:
    """Run ``path`` on the probe batches and compare with the reference outputs."""
    outputs, used = run_graph(path, batches, providers)
    return compare(reference, outputs, cases, provider=used, threshold=threshold)
