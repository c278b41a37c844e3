"""The encoder benchmark's backends (onnxruntime, PyTorch) and the GPU arithmetic-limit estimate.

A :class:`Backend` encodes texts end to end (tokenisation included); fp16 GPU backends also
expose ``prepare`` (tokenise and pad once) and ``kernel`` (run the model on prepared inputs) so
the kernel-only rate can be timed without tokenisation.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Dense fp16 tensor-core peak (TFLOP/s, no sparsity) from the vendors' data sheets.
GPU_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,  # HBM3 = the SXM5 board
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 756.0,  # unspecified form factor: the conservative PCIe figure
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "T4": 65.0,
}


@dataclass
class Backend:
    name: str
    encode: Callable[[list[str]], np.ndarray]
    prepare: Callable[[list[str]], object] | None = None
    kernel: Callable[[object], object] | None = None
    info: dict | None = None


def cuda_available() -> dict:
    """Whether a CUDA GPU is usable here, its name, and why not otherwise."""
    name = None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if out.returncode == 0 and out.stdout.strip():
            name = out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    if name is None:
        return {
            "available": False,
            "name": None,
            "name_slug": None,
            "reason": "no CUDA GPU on this machine (nvidia-smi absent or lists no GPU): "
            "GPU rows skipped",
        }
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return {"available": True, "name": name, "name_slug": slug, "reason": None}


def ort_backend(model_dir: Path, provider: str, variant: str, batch: int) -> Backend:
    """The worker's TextEncoder; one session run per call up to ``batch`` texts."""
    from inference.batching import pad_batch, tokenize
    from inference.encoder import TextEncoder
    from inference.model_settings import ModelSettings

    enc = TextEncoder(
        ModelSettings(dir=model_dir, provider=provider, variant=variant, batch_size=batch)
    )
    name = f"onnxruntime-{provider}-{variant}"

    def prepare(texts: list[str]) -> dict:
        encodings = tokenize(enc._tokenizer, texts)
        b = pad_batch(encodings, np.arange(len(texts)), enc._pad_id)
        return b.feeds(enc._input_names)

    def kernel(feeds: dict) -> object:
        return enc._session.run([enc._output_name], feeds)

    fp16_gpu = provider == "cuda" and variant == "fp16"
    info = {"providers": enc._session.get_providers(), "variant": str(enc.variant)}
    return Backend(
        name, enc.encode, prepare if fp16_gpu else None, kernel if fp16_gpu else None, info
    )


def torch_backend(device: str, precision: str, threads: int) -> Backend:
    """transformers AutoModel from the bundled model folder, mean pooling + L2 normalisation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel, AutoTokenizer

    from exporter.source import default_source_dir

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("this torch build sees no CUDA device")
    src = default_source_dir()
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(src)
    model = AutoModel.from_pretrained(src).eval().to(device)
    if precision == "fp16":
        model = model.half()

    def prepare(texts: list[str]) -> object:
        return tok(texts, padding=True, truncation=True, max_length=256, return_tensors="pt").to(
            device
        )

    @torch.inference_mode()
    def kernel(batch: object) -> object:
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out = torch.nn.functional.normalize(pooled.float(), dim=-1)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    def encode(texts: list[str]) -> np.ndarray:
        return kernel(prepare(texts)).cpu().numpy()

    gpu16 = device == "cuda" and precision == "fp16"
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "attention": getattr(model.config, "_attn_implementation", None),
    }
    return Backend(
        f"pytorch-{device}-{precision}",
        encode,
        prepare if gpu16 else None,
        kernel if gpu16 else None,
        info,
    )


def model_flops(tokens: int, config_path: Path | None = None) -> dict:
    """FLOPs of one sentence of ``tokens`` tokens through the encoder (forward pass).

    Assumption: 2 FLOPs per multiply-add of every weight matrix of the transformer layers
    (Q, K, V, output projection, the two FFN matrices) per token, plus attention's two
    L x L x d products (QK^T and AV, 2 x 2 x L^2 x d per layer). Embedding lookups, layer norms,
    softmax, GELU and pooling are left out (a few percent at these sizes).
    """
    if config_path is None:
        from exporter.source import default_source_dir

        config_path = default_source_dir() / "config.json"
    cfg = json.loads(Path(config_path).read_text())
    d, layers, ffn = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"]
    matmul_params = layers * (4 * d * d + 2 * d * ffn)
    flops = 2 * matmul_params * tokens + layers * 4 * tokens * tokens * d
    return {
        "tokens": tokens,
        "hidden_size": d,
        "layers": layers,
        "intermediate_size": ffn,
        "matmul_params": matmul_params,
        "flops_per_sentence": flops,
        "assumption": model_flops.__doc__.split("\n\n", 1)[1].strip().replace("\n    ", " "),
    }


def gpu_arithmetic_limit(gpu_name: str, tokens: int) -> dict:
    """Sentences/s the GPU could do at its dense fp16 tensor peak (an upper bound)."""
    key = next((k for k in GPU_PEAK_TFLOPS if k.lower() in gpu_name.lower()), None)
    facts = model_flops(tokens)
    if key is None:
        return {**facts, "gpu": gpu_name, "peak_tflops": None, "reason": "GPU not in the table"}
    peak = GPU_PEAK_TFLOPS[key]
    return {
        **facts,
        "gpu": gpu_name,
        "peak_fp16_dense_tflops": peak,
        "peak_source": f"data-sheet figure for {key}",
        "sentences_per_s_limit": round(peak * 1e12 / facts["flops_per_sentence"]),
    }
