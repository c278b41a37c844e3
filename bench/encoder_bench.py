"""Encoder benchmark: texts/s and per-call latency by backend, batch size and text length.

``xrec bench-encoder`` (or ``python -m bench.encoder_bench``) times, in one run and interleaved
so that machine noise hits every backend alike: onnxruntime CPU (the worker's
:class:`inference.encoder.TextEncoder`; fp32, and int8 when the model folder has that graph,
with its agreement with fp32) and PyTorch CPU (transformers, same mean pooling and
normalisation); on a CUDA machine also onnxruntime CUDA fp32 and fp16 and PyTorch CUDA fp16,
plus the kernel-only fp16 rate next to the GPU's arithmetic limit for this model. Every timed
call includes tokenisation unless its row says ``kernel_only``. Results go to
``bench/results/encoder-<device>.json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from bench.encoder_backends import (
    GPU_PEAK_TFLOPS,
    Backend,
    cuda_available,
    gpu_arithmetic_limit,
    ort_backend,
    torch_backend,
)
from bench.report import machine, now_iso, percentile_ms, write_json

RESULTS = Path(__file__).resolve().parent / "results"
BUCKETS = {"short": 32, "long": 128}  # token counts (special tokens included)
NO_INT8 = "the model folder has no int8 graph: export one with `xrec model export --int8 --out DIR`"

app = typer.Typer(add_completion=False, help=__doc__.splitlines()[0])


def corpus() -> list[str]:
    """Product titles: the Food/Kitchen catalogue when present, else the generator's."""
    from bench.workload import DEFAULT_DATA_DIR, dataset_workload, synthetic_workload

    if (DEFAULT_DATA_DIR / "items.tsv").is_file():
        wl = dataset_workload(DEFAULT_DATA_DIR, users=1)
    else:
        wl = synthetic_workload(2000, users=1)
    return [c["title"] for c in wl.catalogue]


def bucket_texts(tokenizer: object, titles: list[str], bucket: str, n: int) -> list[str]:
    """``n`` texts of the bucket: short = titles of at most 32 tokens; long = titles joined
    and cut to exactly 128 tokens (all counts include [CLS] and [SEP])."""
    rng = np.random.default_rng(0)
    order = rng.permutation(len(titles))
    out: list[str] = []
    if bucket == "short":
        for i in order:
            if len(tokenizer.encode(titles[i]).ids) <= BUCKETS["short"]:
                out.append(titles[i])
                if len(out) == n:
                    break
        return (out * (n // max(1, len(out)) + 1))[:n]
    want = BUCKETS["long"] - 2
    j = 0
    while len(out) < n:
        text = ""
        while True:
            text += titles[order[j % len(order)]] + ". "
            j += 1
            enc = tokenizer.encode(text, add_special_tokens=False)
            if len(enc.ids) >= want:
                out.append(text[: enc.offsets[want - 1][1]])
                break
    return out


def time_fn(fn: Callable[[], object], per_call: int, min_s: float, min_calls: int) -> dict:
    """Call ``fn`` (which handles ``per_call`` texts) until both minimums are met."""
    fn()  # warm-up (allocations, kernel selection)
    lat: list[float] = []
    cpu0 = time.process_time()
    start = time.perf_counter()
    while len(lat) < min_calls or time.perf_counter() - start < min_s:
        t = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - t)
    total = sum(lat)
    wall = time.perf_counter() - start
    return {
        "calls": len(lat),
        "texts": per_call * len(lat),
        "seconds": round(total, 3),
        "texts_per_s": round(per_call * len(lat) / total, 1),
        "latency_p50_ms": percentile_ms(lat, 50),
        "latency_p99_ms": percentile_ms(lat, 99),
        # this process's CPU over wall time: below the thread count = cores taken by others
        "cores_used": round((time.process_time() - cpu0) / wall, 2),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def time_encode(
    encode: Callable[[list[str]], object], texts: list[str], batch: int, min_s: float, calls: int
) -> dict:
    """Time ``encode`` on consecutive ``batch``-sized slices of ``texts`` (cycling)."""
    pos = [0]

    def one() -> object:
        i = pos[0]
        pos[0] += batch
        return encode([texts[(i + k) % len(texts)] for k in range(batch)])

    return time_fn(one, batch, min_s, calls)


def run_benchmark(
    *,
    model_dir: Path,
    batches: list[int],
    buckets: list[str],
    min_s: float,
    min_calls: int,
    out_dir: Path,
    torch_cpu: bool = True,
) -> dict:
    """Time every available backend; write ``encoder-<device>.json`` into ``out_dir``."""
    from exporter.onnx_export import ensure_exported
    from inference.batching import load_tokenizer

    model_dir = ensure_exported(model_dir)
    started, host = now_iso(), machine()
    cores = os.cpu_count() or 1
    gpu = cuda_available()
    device = gpu["name_slug"] if gpu["available"] else f"cpu-{cores}core"
    backends: list[Backend] = []
    skipped: list[dict] = []

    def add(name: str, make: Callable[[], Backend]) -> None:
        try:
            backends.append(make())
        except Exception as exc:  # a missing extra or provider: record why and go on
            skipped.append({"backend": name, "reason": f"{type(exc).__name__}: {exc}"[:400]})

    max_batch = max(batches)
    facts = _model_facts(model_dir)
    add("onnxruntime-cpu-fp32", lambda: ort_backend(model_dir, "cpu", "fp32", max_batch))
    if "int8" in facts["variants"]:
        add("onnxruntime-cpu-int8", lambda: ort_backend(model_dir, "cpu", "int8", max_batch))
    else:
        skipped.append({"backend": "onnxruntime-cpu-int8", "reason": NO_INT8})
    if torch_cpu:
        add("pytorch-cpu-fp32", lambda: torch_backend("cpu", "fp32", cores))
    else:
        skipped.append({"backend": "pytorch-cpu-fp32", "reason": "disabled (--no-torch-cpu)"})
    gpu_names = ("onnxruntime-cuda-fp32", "onnxruntime-cuda-fp16", "pytorch-cuda-fp16")
    if gpu["available"]:
        add(gpu_names[0], lambda: ort_backend(model_dir, "cuda", "fp32", max_batch))
        add(gpu_names[1], lambda: ort_backend(model_dir, "cuda", "fp16", max_batch))
        add(gpu_names[2], lambda: torch_backend("cuda", "fp16", cores))
    else:
        skipped += [{"backend": n, "reason": gpu["reason"]} for n in gpu_names]

    tokenizer = load_tokenizer(model_dir / "tokenizer.json", max_length=256)
    titles = corpus()
    pool = {b: bucket_texts(tokenizer, titles, b, max(2048, 4 * max_batch)) for b in buckets}
    rows = []
    for bucket in buckets:
        lengths = [len(e.ids) for e in tokenizer.encode_batch(pool[bucket][:2048])]
        for batch in batches:
            for be in backends:  # interleaved: the same noise for every backend
                r = time_encode(be.encode, pool[bucket], batch, min_s, min_calls)
                rows.append(
                    {
                        "backend": be.name,
                        "bucket": bucket,
                        "batch": batch,
                        "tokens_mean": round(float(np.mean(lengths)), 1),
                        "tokens_max": int(np.max(lengths)),
                        "kernel_only": False,
                        **r,
                    }
                )
    kernel = _kernel_rows(backends, tokenizer, pool, min_s, min_calls)
    by_name = {be.name: be for be in backends}
    agreement = None
    if "onnxruntime-cpu-int8" in by_name:
        texts = pool.get("short") or titles[:2048]
        agreement = int8_agreement(
            by_name["onnxruntime-cpu-fp32"], by_name["onnxruntime-cpu-int8"], texts
        )
    doc = {
        "benchmark": "encoder",
        "date": started,
        "device": device,
        "machine": host,
        "gpu": gpu,
        "model": facts,
        "threads": {"onnxruntime_intra_op": "default (= cores)", "torch": cores},
        "rows": rows,
        "kernel_only_fp16": kernel,
        "int8_vs_fp32": agreement,
        "gpu_arithmetic_limit": (
            gpu_arithmetic_limit(gpu["name"], BUCKETS["short"])
            if gpu["available"]
            else {"skipped": gpu["reason"], "peak_tflops_table": GPU_PEAK_TFLOPS}
        ),
        "skipped": skipped,
        "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
        "notes": [
            "Every row includes tokenisation (HF tokenizers), padding to the batch's longest "
            "text, the model and pooling, unless kernel_only.",
            "Backends are interleaved per (bucket, batch) so machine noise (this machine is "
            "shared with other engineers' test runs) hits them alike; compare rows of this run.",
            "onnxruntime runs the worker's TextEncoder with batch_size = the largest batch, so "
            "each call is one session run.",
        ],
    }
    write_json(out_dir / f"encoder-{device}.json", doc)
    return doc


def int8_agreement(
    fp32: Backend, int8: Backend, texts: list[str], queries: int = 500, k: int = 10
) -> dict:
    """What int8 costs in quality: cosine to the fp32 vector of each text, and how many of each
    query's ``k`` nearest neighbours among ``texts`` (itself left out) the two share."""
    a, b = np.asarray(fp32.encode(texts)), np.asarray(int8.encode(texts))
    cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    q = np.arange(min(queries, len(texts)))

    def nearest(x: np.ndarray) -> np.ndarray:
        scores = x[q] @ x.T
        scores[q, q] = -np.inf
        return np.argsort(-scores, axis=1)[:, :k]

    shared = [len(set(r) & set(t)) / k for r, t in zip(nearest(a), nearest(b), strict=True)]
    return {
        "texts": len(texts),
        "queries": len(q),
        "min_cosine": round(float(cos.min()), 4),
        "mean_cosine": round(float(cos.mean()), 4),
        f"top{k}_neighbours_shared": round(float(np.mean(shared)), 4),
    }


def _kernel_rows(backends: list[Backend], tokenizer, pool, min_s, min_calls) -> list[dict]:
    rows = []
    for be in backends:
        if be.kernel is None:
            continue
        for batch in (512, 1024, 2048):
            texts = pool["short"][:batch]
            feeds, kernel = be.prepare(texts), be.kernel
            r = time_fn(lambda f=feeds, k=kernel: k(f), batch, min_s, min_calls)
            rows.append({"backend": be.name, "bucket": "short", "batch": batch, **r})
    return rows


def _model_facts(model_dir: Path) -> dict:
    from exporter.manifest import verify_bundle

    m = verify_bundle(model_dir, check_hashes=False)
    return {
        "id": m.model_id,
        "version": m.model_version,
        "dim": m.dim,
        "max_length": m.max_length,
        "variants": sorted(str(v) for v in m.variants),
    }


@app.callback(invoke_without_command=True)
def cli(
    model_dir: Annotated[Path | None, typer.Option(envvar="MODEL_DIR")] = None,
    batches: Annotated[
        list[int] | None, typer.Option("--batch", envvar="BENCH_ENCODER_BATCHES")
    ] = None,
    buckets: Annotated[
        list[str] | None, typer.Option("--bucket", envvar="BENCH_ENCODER_BUCKETS")
    ] = None,
    min_s: Annotated[float, typer.Option(envvar="BENCH_ENCODER_MIN_S")] = 2.0,
    min_calls: Annotated[int, typer.Option(envvar="BENCH_ENCODER_MIN_CALLS")] = 3,
    torch_cpu: Annotated[bool, typer.Option(envvar="BENCH_ENCODER_TORCH_CPU")] = True,
    out_dir: Annotated[Path, typer.Option(envvar="BENCH_OUT_DIR")] = RESULTS,
) -> None:
    """Run the encoder benchmark and print texts/s per backend, bucket and batch."""
    from inference.model_settings import ModelSettings

    doc = run_benchmark(
        model_dir=model_dir or ModelSettings().dir,
        batches=batches or [1, 8, 32, 128, 512],
        buckets=buckets or ["short", "long"],
        min_s=min_s,
        min_calls=min_calls,
        out_dir=out_dir,
        torch_cpu=torch_cpu,
    )
    for r in doc["rows"]:
        typer.echo(
            f"{r['backend']:<24} {r['bucket']:<6} batch {r['batch']:>5}: "
            f"{r['texts_per_s']:>9.1f} texts/s  p50 {r['latency_p50_ms']} ms"
        )
    for s in doc["skipped"]:
        typer.echo(f"skipped {s['backend']}: {s['reason']}")
    typer.echo(f"wrote {out_dir / ('encoder-' + doc['device'] + '.json')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m bench.encoder_bench [flags]``."""
    typer.main.get_command(app).main(args=argv, prog_name="bench-encoder", standalone_mode=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
