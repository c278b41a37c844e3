"""Settings of the text encoder runtime (environment variables ``MODEL_*``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_DIR = Path("models/all-MiniLM-L6-v2")


class Provider(StrEnum):
    """Which onnxruntime execution provider to run on."""

    AUTO = "auto"  # CUDA when onnxruntime offers it, CPU otherwise
    CUDA = "cuda"  # CUDA or a loud failure, never a silent CPU run
    CPU = "cpu"


class Variant(StrEnum):
    """Which graph of the exported bundle to load."""

    AUTO = "auto"  # fp16 on CUDA (when exported), fp32 on CPU
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class ModelSettings(BaseSettings):
    """Where the exported model is and how to run it."""

    model_config = SettingsConfigDict(env_prefix="MODEL_", extra="ignore")

    dir: Path = Field(
        default=DEFAULT_MODEL_DIR, description="exported model folder (xrec model export)"
    )
    provider: Provider = Field(default=Provider.AUTO, description="auto, cuda or cpu")
    variant: Variant = Field(default=Variant.AUTO, description="auto, fp32, fp16 or int8")
    batch_size: int = Field(default=64, ge=1, le=65536, description="texts per micro-batch")
    max_length: int | None = Field(
        default=None, ge=2, description="token limit per text; default: the manifest's"
    )
    intra_op_threads: int = Field(
        default=0, ge=0, description="onnxruntime intra-op threads; 0 = onnxruntime's default"
    )
