"""``xrec model export`` / ``verify``: flags, their environment twins, exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from exporter.cli import app
from exporter.manifest import load_manifest

runner = CliRunner()


def _plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_export_help_shows_env_twins() -> None:
    result = runner.invoke(app, ["export", "--help"], terminal_width=200)
    assert result.exit_code == 0
    out = _plain(result.output)
    for flag, env in [
        ("--source", "EXPORT_SOURCE"),
        ("--out", "EXPORT_OUT"),
        ("--fp16", "EXPORT_FP16"),
        ("--int8", "EXPORT_INT8"),
        ("--max-length", "EXPORT_MAX_LENGTH"),
    ]:
        assert flag in out and env in out
    assert "--no-fp16" in out and "--no-int8" in out
    assert "models/all-MiniLM-L6-v2" in out


@pytest.mark.model
def test_export_via_env_and_verify(tiny_source: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    env = {"EXPORT_SOURCE": str(tiny_source), "EXPORT_OUT": str(out), "EXPORT_FP16": "false"}
    result = runner.invoke(app, ["export", "--max-length", "32"], env=env)
    assert result.exit_code == 0, result.output
    manifest = load_manifest(out)
    assert list(manifest.variants) == ["fp32"] and manifest.max_length == 32
    assert manifest.model_version in result.output and "min cosine" in result.output

    verified = runner.invoke(app, ["verify", "--dir", str(out)])
    assert verified.exit_code == 0 and manifest.model_version in verified.output
    (out / "model.onnx").write_bytes(b"corrupt")
    broken = runner.invoke(app, ["verify", "--dir", str(out)])
    assert broken.exit_code == 2 and "sha256" in broken.output


def test_export_reports_config_errors(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--source", str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "not a Hugging Face model folder" in result.output
