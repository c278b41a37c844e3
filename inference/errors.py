"""The product's exception hierarchy: one root, so callers can catch everything we raise."""

from __future__ import annotations


class RecommenderError(Exception):
    """Root of every error this product raises on purpose."""


class ConfigError(RecommenderError):
    """A setting is missing or wrong; the message names the setting and the fix."""


class ProviderUnavailableError(ConfigError):
    """The requested onnxruntime execution provider (e.g. CUDA) cannot be used."""


class ModelError(RecommenderError):
    """A model file, manifest or bundle is missing, corrupt or failed validation."""


class ParityError(ModelError):
    """An exported model does not match its reference within tolerance."""


class InvalidEventError(RecommenderError):
    """An input record failed validation; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message


class StoreError(RecommenderError):
    """The vector store failed or is unavailable (may be transient)."""
