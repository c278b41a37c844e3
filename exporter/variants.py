"""Derived graphs: fp16 for the GPU (transformer optimiser) and int8 for the CPU (dynamic).

Both start from the validated fp32 graph. Neither is checked here; the caller measures their
parity against the same PyTorch reference and decides what to gate.
"""

from __future__ import annotations

import logging
from pathlib import Path

from exporter.source import SourceModel

log = logging.getLogger(__name__)

FP16_FILE = "model_fp16.onnx"
INT8_FILE = "model_int8.onnx"

FP16_NOT_VALIDATED = (
    "not validated on this machine: onnxruntime here has no CUDAExecutionProvider and fp16 "
    "parity is only meaningful on the GPU it targets; export on a GPU machine (or run the "
    "`gpu` tests) to validate it"
)


def int8_warning(min_cosine: float, mean_cosine: float) -> str:
    """The manifest's caution for an int8 graph, with its measured figures."""
    return (
        f"int8 dynamic quantisation: min cosine {min_cosine:.4f}, mean {mean_cosine:.4f} to "
        "the PyTorch fp32 reference (fp32 is gated at 0.9999); validate retrieval quality "
        "before serving it"
    )


def make_fp16(src: Path, dst: Path, source: SourceModel) -> list[str]:
    """Fuse the fp32 graph for transformers and convert it to fp16, keeping float32 I/O.

    Returns the names of the fused operators found (empty: no fusion matched, the graph
    still works but runs slower on the GPU).
    """
    from onnxruntime.transformers.optimizer import optimize_model

    # opt_level 0: only the Python fusions (Attention, SkipLayerNorm, ...), no onnxruntime
    # CPU-specific rewrites, so the saved graph stays portable to the CUDA provider
    model = optimize_model(
        str(src),
        model_type="bert",
        num_heads=source.num_heads,
        hidden_size=source.hidden_size,
        opt_level=0,
        use_gpu=True,
    )
    fused = sorted(k for k, v in model.get_fused_operator_statistics().items() if v)
    if "Attention" not in fused and "MultiHeadAttention" not in fused:
        log.warning("fp16: no attention fusion matched; the GPU graph will be slower")
    # keep_io_types: callers feed int64 ids and read float32 vectors, whatever the precision
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dst), use_external_data_format=False)
    return fused


def make_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the MatMul weights (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # per-channel QInt8 measured here: min cosine ~0.98, mean ~0.987 on MiniLM, against
    # ~0.92 / 0.94 per tensor
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True)


def io_types(path: Path) -> dict[str, str]:
    """Element type of each graph input and output, e.g. ``{"embeddings": "FLOAT"}``."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return {
        v.name: onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type)
        for v in (*graph.input, *graph.output)
    }
