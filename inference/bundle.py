"""The versioned model bundle the worker loads: item vectors, projections, bridge, parameters.

On disk a bundle is a folder with ``bundle.npz`` (arrays) and ``manifest.json`` (version, schema,
parameters, the npz's sha256). The version is a hash of the content, so two fits that agree give
the same version and a recommendation event names exactly the model that produced it. ``save``
writes into a temporary folder and renames it into place, so a worker reloading a bundle folder
never sees half a bundle. numpy only (loading and per-item lookups run in the worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import ModelError
from inference.text_bridge import TextBridge

SCHEMA_VERSION = 1
ARRAYS_FILE = "bundle.npz"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class BundleParams:
    """Scalars of the per-user migration, fitted on evidence (see ``inference.fit``)."""

    half_life_events: float = 0.0  # recency half-life of interest, in events; 0 = no decay
    own_prior: float = 2.0  # pseudo-count: own-domain confidence is n / (n + own_prior)
    transfer_gain: float = 1.0  # scale of projected interest against own interest
    pop_weight: float = 0.0  # query-side weight of the log-popularity coordinate


@dataclass(frozen=True)
class NewItemVectors:
    """Vectors of an item known only by its text."""

    input: np.ndarray  # what a user's interest accumulates when they touch it
    output: np.ndarray  # what the vector store ranks it by (last coordinate: log-popularity)


def pair_key(source: str, target: str) -> str:
    """Storage key of the projection ``source -> target``."""
    return f"{source}->{target}"


@dataclass(frozen=True)
class ModelBundle:
    """Everything the streaming worker needs to turn interest into target-domain queries."""

    item_ids: tuple[str, ...]
    item_domains: tuple[str, ...]
    inputs: np.ndarray  # [n_items, dim] item input vectors
    outputs: np.ndarray  # [n_items, dim + 1] item output vectors, last = log1p(count)
    projections: Mapping[str, np.ndarray]  # pair_key(s, t) -> [dim, dim]
    bridge: TextBridge  # text vector -> concatenated [input | output without popularity]
    params: BundleParams = BundleParams()
    text_model: str = ""  # version of the text encoder the bridge was fitted for
    fit_info: Mapping[str, Any] = field(default_factory=dict)
    version: str = field(init=False)
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _domain_array: np.ndarray = field(init=False, repr=False, compare=False)
    _domains: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n, dim = self.inputs.shape
        if self.outputs.shape != (n, dim + 1) or {len(self.item_ids), len(self.item_domains)} != {
            n
        }:
            raise ModelError("bundle arrays disagree on the number of items or the dimension")
        if self.bridge.out_dim != 2 * dim:
            raise ModelError(f"text bridge produces {self.bridge.out_dim} values, need {2 * dim}")
        for key, p in self.projections.items():
            if p.shape != (dim, dim):
                raise ModelError(f"projection {key} has shape {p.shape}, need {(dim, dim)}")
        object.__setattr__(self, "_index", {item: i for i, item in enumerate(self.item_ids)})
        object.__setattr__(self, "_domain_array", np.asarray(self.item_domains))
        object.__setattr__(self, "_domains", tuple(sorted(set(self.item_domains))))
        object.__setattr__(self, "version", self._content_hash())

    # -- lookups -------------------------------------------------------------------------

    @property
    def domains(self) -> tuple[str, ...]:
        """Domains the bundle covers (sorted)."""
        return self._domains

    @property
    def input_dim(self) -> int:
        """Dimension of item input vectors and interest means."""
        return int(self.inputs.shape[1])

    @property
    def output_dim(self) -> int:
        """Dimension of item output vectors and query vectors (input_dim + 1)."""
        return int(self.outputs.shape[1])

    def index_of(self, item_id: str) -> int | None:
        """Row of an item, or None for an item the bundle has never seen."""
        return self._index.get(item_id)

    def input_vector(self, item_id: str) -> np.ndarray | None:
        """Input vector of a known item (None when unknown: use ``vector_for_new_item``)."""
        i = self._index.get(item_id)
        return None if i is None else self.inputs[i]

    def output_vector(self, item_id: str) -> np.ndarray | None:
        """Output vector of a known item (None when unknown)."""
        i = self._index.get(item_id)
        return None if i is None else self.outputs[i]

    def items_of(self, domain: str) -> np.ndarray:
        """Row indices of the items of one domain."""
        return np.flatnonzero(self._domain_array == domain)

    def has_projection(self, source: str, target: str) -> bool:
        """Whether interest can flow from ``source`` to ``target``."""
        return pair_key(source, target) in self.projections

    def projection(self, source: str, target: str) -> np.ndarray:
        """Projection matrix ``source -> target`` (row-vector convention)."""
        try:
            return self.projections[pair_key(source, target)]
        except KeyError:
            raise ModelError(
                f"bundle {self.version} has no projection {source}->{target}"
            ) from None

    def vector_for_new_item(self, text_vector: np.ndarray, domain: str) -> NewItemVectors:
        """Place an item with no interactions from its text vector alone (via the bridge)."""
        both = self.bridge.apply(text_vector, domain)
        dim = self.input_dim
        output = np.append(both[dim:], np.float32(0.0))  # no interactions: log1p(0) = 0
        return NewItemVectors(input=both[:dim].astype(np.float32), output=output.astype(np.float32))

    def text_input(self, text_vector: np.ndarray, domain: str) -> np.ndarray:
        """Input vector of free text (a search, a review) in ``domain``."""
        return self.vector_for_new_item(text_vector, domain).input

    # -- persistence ---------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "item_ids": np.asarray(self.item_ids, dtype=str),
            "item_domains": np.asarray(self.item_domains, dtype=str),
            "inputs": np.ascontiguousarray(self.inputs, dtype=np.float32),
            "outputs": np.ascontiguousarray(self.outputs, dtype=np.float32),
            "bridge_domains": np.asarray(self.bridge.domains, dtype=str),
            **{
                k: np.ascontiguousarray(v, dtype=np.float32)
                for k, v in self.bridge.as_arrays().items()
            },
        }
        for key, p in sorted(self.projections.items()):
            arrays[f"projection:{key}"] = np.ascontiguousarray(p, dtype=np.float32)
        return arrays

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        for name, arr in sorted(self._arrays().items()):
            h.update(name.encode())
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        h.update(json.dumps(asdict(self.params), sort_keys=True).encode())
        h.update(self.text_model.encode())
        return f"xfer-{h.hexdigest()[:12]}"

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the bundle to ``folder`` (replacing it atomically) and return the folder."""
        dest = Path(folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            np.savez(tmp / ARRAYS_FILE, **self._arrays())
            manifest = {
                "schema_version": SCHEMA_VERSION,
                "version": self.version,
                "arrays_sha256": _sha256(tmp / ARRAYS_FILE),
                "items": len(self.item_ids),
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "domains": list(self.domains),
                "projections": sorted(self.projections),
                "params": asdict(self.params),
                "text_model": self.text_model,
                "fit_info": dict(self.fit_info),
            }
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
            old = dest.with_name(f".{dest.name}.old")
            if dest.exists():
                shutil.rmtree(old, ignore_errors=True)
                dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    @classmethod
    def load(cls, folder: str | os.PathLike[str]) -> ModelBundle:
        """Read a bundle written by :meth:`save`, checking schema, hash and version."""
        src = Path(folder)
        try:
            manifest = json.loads((src / MANIFEST_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{src}: no readable {MANIFEST_FILE} ({exc}); fit a bundle first"
            ) from exc
        if manifest.get("schema_version") != SCHEMA_VERSION:
            raise ModelError(
                f"{src}: bundle schema {manifest.get('schema_version')}, need {SCHEMA_VERSION}"
            )
        if _sha256(src / ARRAYS_FILE) != manifest.get("arrays_sha256"):
            raise ModelError(f"{src / ARRAYS_FILE} does not match its sha256 in the manifest")
        try:
            with np.load(src / ARRAYS_FILE, allow_pickle=False) as data:
                arrays = {name: data[name] for name in data.files}
            bundle = cls(
                item_ids=tuple(arrays["item_ids"].tolist()),
                item_domains=tuple(arrays["item_domains"].tolist()),
                inputs=arrays["inputs"],
                outputs=arrays["outputs"],
                projections={
                    k.split(":", 1)[1]: v for k, v in arrays.items() if k.startswith("projection:")
                },
                bridge=TextBridge(
                    tuple(arrays["bridge_domains"].tolist()), arrays["bridge_weights"]
                ),
                params=BundleParams(**manifest["params"]),
                text_model=manifest.get("text_model", ""),
                fit_info=manifest.get("fit_info", {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            # e.g. a bundle written by a newer xrec (a parameter this one does not know)
            raise ModelError(
                f"{src}: not a bundle this version of xrec can read ({exc!r}): refit it with "
                "this version, or run the version that wrote it"
            ) from exc
        bad = [
            name
            for name, arr in arrays.items()
            if arr.dtype.kind == "f" and not np.isfinite(arr).all()
        ]
        if bad:
            raise ModelError(f"{src}: {', '.join(sorted(bad))} hold NaN or inf: refit the bundle")
        if bundle.version != manifest.get("version"):
            raise ModelError(
                f"{src}: content hashes to {bundle.version}, "
                f"manifest says {manifest.get('version')}"
            )
        return bundle


def _sha256(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
