"""The PyTorch side of the export: load the model, wrap it with pooling, trace it to ONNX.

The only module of the product that imports torch and transformers (the export extra).
"""

from __future__ import annotations

import inspect
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from exporter.manifest import Pooling
from exporter.source import SourceModel
from inference.batching import TokenBatch
from inference.errors import ConfigError

OUTPUT_NAME = "embeddings"


class PooledEncoder(torch.nn.Module):
    """A transformer encoder plus pooling over the attention mask and L2 normalisation."""

    def __init__(self, model: torch.nn.Module, pooling: Pooling, inputs: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.pooling = pooling
        self.use_token_types = "token_type_ids" in inputs

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sentence vectors [batch, dim], unit length."""
        extra = {"token_type_ids": token_type_ids} if self.use_token_types else {}
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)[0]
        if self.pooling == Pooling.CLS:
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            # clamp: an all-padding row would otherwise divide by zero
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


def load_model(source: SourceModel) -> torch.nn.Module:
    """Load the source folder with transformers, offline, in eval mode."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # never reach a model hub, whatever the folder says
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar in the demo's first lines
    try:
        # eager attention: the sdpa path traces to a graph the onnxruntime transformer
        # optimiser cannot fuse into its Attention op, which the fp16 GPU graph relies on
        model = AutoModel.from_pretrained(
            str(source.path), local_files_only=True, attn_implementation="eager"
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(f"transformers cannot load {source.path}: {exc}") from exc
    return model.eval()


def graph_inputs(model: torch.nn.Module) -> list[str]:
    """Inputs the graph takes: token_type_ids only when the model cannot default them.

    BERT-style models fill token types with zeros when omitted, which is exactly what a
    tokenizer gives a single sentence; omitting the input keeps the runtime simpler.
    """
    params = inspect.signature(model.forward).parameters
    if "attention_mask" not in params:
        raise ConfigError(f"{type(model).__name__}.forward takes no attention_mask")
    token_types = params.get("token_type_ids")
    needed = token_types is not None and token_types.default is inspect.Parameter.empty
    return ["input_ids", "attention_mask", *(["token_type_ids"] if needed else [])]


def export_onnx(
    module: PooledEncoder,
    path: Path,
    *,
    example: TokenBatch,
    inputs: Sequence[str],
    opset: int,
    dim: int,
) -> None:
    """Trace ``module`` into one self-contained ONNX file with dynamic batch and sequence.

    ``example`` should hold rows of different lengths, so the traced mask path is the real one.
    """
    feeds = example.feeds(inputs)
    args = tuple(torch.from_numpy(feeds[name]) for name in inputs)
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes[OUTPUT_NAME] = {0: "batch"}
    module.eval()
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns about Python control flow in transformers' mask helpers; parity
        # checks at several shapes afterwards are what prove the graph is shape-generic
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(inputs),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the dynamo exporter writes weights to a side .data file
        )
    module.eval()  # export restores the module's previous mode; make sure it is eval
    _fix_output_dim(path, dim)


def _fix_output_dim(path: Path, dim: int) -> None:
    """Write the vector size into the output shape (the tracer leaves it symbolic)."""
    import onnx

    model = onnx.load(str(path))
    (output,) = model.graph.output
    size = output.type.tensor_type.shape.dim[1]
    size.ClearField("dim_param")
    size.dim_value = dim
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def torch_reference(module: PooledEncoder, batches: Sequence[TokenBatch]) -> list[np.ndarray]:
    """Run the PyTorch fp32 module on the probe batches."""
    outputs = []
    module.eval()
    with torch.inference_mode():
        for batch in batches:
            kwargs = {
                "input_ids": torch.from_numpy(batch.input_ids),
                "attention_mask": torch.from_numpy(batch.attention_mask),
            }
            if module.use_token_types:
                kwargs["token_type_ids"] = torch.from_numpy(batch.token_type_ids)
            outputs.append(module(**kwargs).float().numpy())
    return outputs


def library_versions() -> dict[str, str]:
    """Versions of torch and transformers used for the export (for the manifest)."""
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
