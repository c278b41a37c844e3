"""``xrec model ...``: export a Hugging Face encoder to ONNX, and verify an exported bundle.

Every flag has an environment-variable twin, shown in ``--help``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from exporter.manifest import Manifest, Precision, verify_bundle
from inference.errors import RecommenderError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Export a Hugging Face encoder to a validated ONNX bundle.",
)

DEFAULT_OUT = Path("models/all-MiniLM-L6-v2")


@app.callback()
def _group() -> None:
    """Export and validate the ONNX text encoder."""
    # a callback keeps `export` a named sub-command even though it is the main one


def _summary(manifest: Manifest, out: Path) -> str:
    lines = [
        f"{manifest.model_version}  dim {manifest.dim}, {manifest.pooling} pooling, "
        f"max_length {manifest.max_length}, opset {manifest.opset} -> {out}"
    ]
    for info in manifest.variants.values():
        figures = info.parity
        parity = (
            f"min cosine {figures.min_cosine:.6f}, mean {figures.mean_cosine:.6f}, "
            f"max |diff| {figures.max_abs_diff:.2g} on {figures.provider}"
            if figures
            else "parity not measured"
        )
        lines.append(f"  {info.precision:<5} {info.file:<18} {info.bytes / 1e6:6.1f} MB  {parity}")
        if info.note and not info.validated:
            lines.append(f"        ! {info.note}")
        if info.warning:
            lines.append(f"        ! {info.warning}")
    if manifest.export_seconds is not None:
        lines.append(f"  export + parity: {manifest.export_seconds:.1f}s")
    return "\n".join(lines)


@app.command("export")
def export(
    source: Annotated[
        Path | None,
        typer.Option(
            "--source",
            envvar="EXPORT_SOURCE",
            help="Hugging Face model folder; default: the bundled all-MiniLM-L6-v2",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", envvar="EXPORT_OUT", help="bundle folder to (re)write")
    ] = DEFAULT_OUT,
    fp16: Annotated[
        bool,
        typer.Option(
            "--fp16/--no-fp16",
            envvar="EXPORT_FP16",
            help="also write an fp16 graph for the GPU (validated where CUDA is available)",
        ),
    ] = True,
    int8: Annotated[
        bool,
        typer.Option(
            "--int8/--no-int8",
            envvar="EXPORT_INT8",
            help="also write a dynamic-int8 CPU graph (parity recorded, not gated)",
        ),
    ] = False,
    max_length: Annotated[
        int | None,
        typer.Option(
            "--max-length",
            envvar="EXPORT_MAX_LENGTH",
            help="token limit; default: the model's (sentence-transformers max_seq_length)",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", envvar="EXPORT_LOG_LEVEL")] = "info",
) -> None:
    """Export to ONNX (pooling + L2 norm in the graph) and refuse to write if parity fails."""
    # only our own loggers at log_level: the int8 quantiser logs every tensor at INFO on root
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("exporter").setLevel(log_level.upper())
    try:
        from exporter.onnx_export import export_model

        wanted = [Precision.FP32]
        wanted += [Precision.FP16] if fp16 else []
        wanted += [Precision.INT8] if int8 else []
        manifest = export_model(source, out, variants=wanted, max_length=max_length)
    except ImportError as exc:
        typer.echo(f"error: {exc}; install the export extra: pip install 'xrec[export]'", err=True)
        raise typer.Exit(2) from exc
    except RecommenderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(_summary(manifest, out))


@app.command("verify")
def verify(
    model_dir: Annotated[
        Path, typer.Option("--dir", envvar="MODEL_DIR", help="exported bundle folder")
    ] = DEFAULT_OUT,
) -> None:
    """Check that a bundle's files are present and match the hashes in its manifest."""
    try:
        manifest = verify_bundle(model_dir)
    except RecommenderError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(_summary(manifest, model_dir))


if __name__ == "__main__":
    app()
