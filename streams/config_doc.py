"""Render every setting of every subsystem as a Markdown table (``xrec config``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings


def settings_classes() -> list[type[BaseSettings]]:
    """The settings class of each subsystem, in the order the README documents them."""
    from inference.model_settings import ModelSettings
    from store.settings import QdrantSettings
    from streams.settings import KafkaSettings, WorkerSettings

    return [KafkaSettings, WorkerSettings, ModelSettings, QdrantSettings]


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Field name -> environment variable for one settings class."""
    prefix = cls.model_config.get("env_prefix", "")
    return {name: f"{prefix}{name}".upper() for name in cls.model_fields}


def markdown() -> str:
    """One table per subsystem: variable, default, meaning."""
    out: list[str] = []
    for cls in settings_classes():
        out += [
            f"**{cls.__name__}** ({(cls.__doc__ or '').strip().splitlines()[0]})",
            "",
            "| variable | default | meaning |",
            "|---|---|---|",
        ]
        for name, env in env_names(cls).items():
            field = cls.model_fields[name]
            default = field.default_factory() if field.default_factory else field.default
            shown = getattr(default, "value", default)
            out.append(f"| `{env}` | `{shown}` | {field.description or ''} |")
        out.append("")
    return "\n".join(out)
