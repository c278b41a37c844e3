"""The text encoder runtime: an exported ONNX graph run by onnxruntime, tokenised by ``tokenizers``.

The graph already pools and L2-normalises, so a run returns sentence vectors directly. No
torch and no transformers here: the worker image carries only onnxruntime, tokenizers, numpy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import numpy as np
import onnxruntime as ort

from exporter.manifest import MANIFEST_FILE, Manifest, Precision, file_sha256, verify_bundle
from exporter.parity import FP16_MIN_COSINE, row_cosines
from inference.batching import length_sorted_batches, load_tokenizer, tokenize
from inference.errors import ConfigError, ModelError, ProviderUnavailableError
from inference.model_settings import ModelSettings, Provider, Variant

log = logging.getLogger(__name__)

CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"

# An fp16 graph the export could not validate (no GPU there) is checked where it is served,
# against the fp32 graph on the same provider, with the export's own gate (FP16_MIN_COSINE).
AGREEMENT_TEXTS = (
    "",
    "a",
    "Stainless steel chef's knife, 8 inch",
    "organic green tea, 100 bags",
    "Ceramic non-stick frying pan with lid (28 cm) - dishwasher safe",
    "Crème brûlée torch 🔥 for the kitchen",
    "why does my sourdough starter smell like acetone after two days in the fridge?",
    " ".join(["long text"] * 200),
)


class TextEncoder:
    """Encode texts into L2-normalised float32 vectors with the exported model."""

    def __init__(self, settings: ModelSettings | None = None) -> None:
        self.settings = settings or ModelSettings()
        self._dir = Path(self.settings.dir)
        self.manifest = self._load_manifest()
        self.max_length = self._max_length()
        self._tokenizer = load_tokenizer(
            self._dir / self.manifest.tokenizer.file, max_length=self.max_length
        )
        self._pad_id = self.manifest.tokenizer.pad_id
        self._session, self._provider, self._variant = self._open_session()
        self._input_names = [i.name for i in self._session.get_inputs()]
        self._output_name = self.manifest.output
        # one thread: onnxruntime already uses every core per run, and a single thread keeps
        # micro-batches from different callers from fighting over them
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="text-encoder")
        log.info(
            "text encoder %s (%s) on %s, max_length %d, batch %d",
            self.model_version,
            self._variant,
            self._provider,
            self.max_length,
            self.settings.batch_size,
        )

    # -- loading -------------------------------------------------------------------------

    def _load_manifest(self) -> Manifest:
        if not (self._dir / MANIFEST_FILE).is_file():
            raise ConfigError(
                f"MODEL_DIR={self._dir} holds no exported model ({MANIFEST_FILE} missing): "
                f"run `xrec model export --out {self._dir}` or point MODEL_DIR at an export"
            )
        return verify_bundle(self._dir, check_hashes=False)

    def _max_length(self) -> int:
        limit = self.manifest.max_length
        wanted = self.settings.max_length or limit
        if wanted > limit:
            raise ConfigError(
                f"MODEL_MAX_LENGTH={wanted} exceeds the {limit} tokens the model was exported "
                f"and validated with: lower it or re-export with --max-length {wanted}"
            )
        return wanted

    def _precision(self, on_cuda: bool) -> Precision:
        wanted = self.settings.variant
        if wanted == Variant.AUTO:
            on_gpu_fp16 = on_cuda and Precision.FP16 in self.manifest.variants
            return Precision.FP16 if on_gpu_fp16 else Precision.FP32
        precision = Precision(wanted.value)
        if precision not in self.manifest.variants:
            raise ConfigError(
                f"MODEL_VARIANT={wanted} but {self._dir} has no {wanted} graph: re-export with "
                f"`xrec model export --{wanted}` or set MODEL_VARIANT=auto"
            )
        return precision

    def _checked_fp16(
        self, session: ort.InferenceSession, precision: Precision, providers: list[str]
    ) -> tuple[ort.InferenceSession, Precision]:
        """The fp16 session ``auto`` chose, unless the export could not validate it and it
        disagrees with fp32 here: then the fp32 session, said loudly."""
        chosen = self.manifest.variants[precision]
        if precision != Precision.FP16 or chosen.validated or self.settings.variant != Variant.AUTO:
            return session, precision
        fp32 = self._session_for(Precision.FP32, providers)
        agreement = self.agreement(session, fp32)
        if agreement >= FP16_MIN_COSINE:
            log.info("fp16 graph agrees with fp32 here: min cosine %.5f", agreement)
            return session, precision
        log.error(
            "fp16 graph disagrees with fp32 on %s (min cosine %.5f < %s): serving fp32; "
            "re-export the fp16 graph, or set MODEL_VARIANT=fp16 to serve it anyway",
            providers[0],
            agreement,
            FP16_MIN_COSINE,
        )
        return fp32, Precision.FP32

    def agreement(self, a: ort.InferenceSession, b: ort.InferenceSession) -> float:
        """The least cosine between two sessions' vectors of :data:`AGREEMENT_TEXTS`."""
        vectors = [
            self._run(s, [i.name for i in s.get_inputs()], AGREEMENT_TEXTS, 4) for s in (a, b)
        ]
        return float(np.nan_to_num(row_cosines(*vectors), nan=-1.0).min())

    def _session_for(self, precision: Precision, providers: list[str]) -> ort.InferenceSession:
        info = self.manifest.variants[precision]
        path = self._dir / info.file
        if file_sha256(path) != info.sha256:
            raise ModelError(f"{path} does not match its sha256 in the manifest: re-export it")
        if not info.validated:
            log.warning("%s graph %s was never validated: %s", precision, path, info.note)
        if info.warning:
            log.warning("%s graph: %s", precision, info.warning)
        options = ort.SessionOptions()
        if self.settings.intra_op_threads:
            options.intra_op_num_threads = self.settings.intra_op_threads
        try:
            return ort.InferenceSession(str(path), sess_options=options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped exceptions
            if CUDA_EP in providers:
                raise ProviderUnavailableError(
                    f"onnxruntime could not open {path} on CUDA ({exc}); set MODEL_PROVIDER=cpu"
                ) from exc
            raise ModelError(f"onnxruntime could not load {path}: {exc}") from exc

    def _open_session(self) -> tuple[ort.InferenceSession, Provider, Precision]:
        available = ort.get_available_providers()
        wanted = self.settings.provider
        if wanted == Provider.CUDA and CUDA_EP not in available:
            raise ProviderUnavailableError(
                f"MODEL_PROVIDER=cuda but this onnxruntime offers only {available}: install "
                "onnxruntime-gpu built for this machine's CUDA (pip install 'xrec[gpu]') or "
                "set MODEL_PROVIDER=auto / cpu"
            )
        if wanted == Provider.CUDA or (wanted == Provider.AUTO and CUDA_EP in available):
            precision = self._precision(on_cuda=True)
            session = self._session_for(precision, [CUDA_EP, CPU_EP])
            # onnxruntime silently drops CUDA when a CUDA library is missing: check what it got
            if CUDA_EP in session.get_providers():
                session, precision = self._checked_fp16(session, precision, [CUDA_EP, CPU_EP])
                return session, Provider.CUDA, precision
            if wanted == Provider.CUDA:
                raise ProviderUnavailableError(
                    f"MODEL_PROVIDER=cuda but the session runs on {session.get_providers()}: a "
                    "CUDA/cuDNN library onnxruntime-gpu needs is missing (see its log above); "
                    "fix the CUDA install or set MODEL_PROVIDER=cpu"
                )
            log.warning("CUDA is listed but unusable (%s); using the CPU", session.get_providers())
        precision = self._precision(on_cuda=False)
        return self._session_for(precision, [CPU_EP]), Provider.CPU, precision

    # -- properties ----------------------------------------------------------------------

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.manifest.dim

    @property
    def provider(self) -> Provider:
        """The execution provider really in use (``cuda`` or ``cpu``)."""
        return self._provider

    @property
    def variant(self) -> Precision:
        """The graph variant in use (fp32, fp16 or int8)."""
        return self._variant

    @property
    def model_version(self) -> str:
        """Short version string, e.g. ``all-MiniLM-L6-v2@1a2b3c4d``."""
        version = self.manifest.model_version
        # texts cut shorter than the export's limit give other vectors: another version
        if self.max_length != self.manifest.max_length:
            version += f"-len{self.max_length}"
        return version

    # -- encoding ------------------------------------------------------------------------

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` into a float32 array [len(texts), dim], rows in input order."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        return self._run(self._session, self._input_names, texts, self.settings.batch_size)

    def _run(
        self,
        session: ort.InferenceSession,
        input_names: list[str],
        texts: Sequence[str],
        batch_size: int,
    ) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        encodings = tokenize(self._tokenizer, texts)
        for batch in length_sorted_batches(encodings, batch_size, self._pad_id):
            (vectors,) = session.run([self._output_name], batch.feeds(input_names))
            out[batch.indices] = vectors
        return out

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        """:meth:`encode` on the encoder's own thread, so the event loop keeps running."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.encode, list(texts))

    def close(self) -> None:
        """Stop the encoder thread (pending calls finish first)."""
        self._executor.shutdown(wait=True)

    def __enter__(self) -> TextEncoder:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
