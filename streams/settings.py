"""Settings for the Kafka side of the worker: one pydantic-settings class per subsystem.

Every field has an environment-variable twin (prefix + upper-case field name), and the CLI
shows it in each flag's help. Secrets are ``SecretStr`` so they never reach a log line.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from inference.errors import ConfigError


class EventLoop(StrEnum):
    """The asyncio event loop implementation the worker runs on."""

    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class KafkaSettings(BaseSettings):
    """Where the broker is, how to authenticate, and the topic names (env prefix ``KAFKA_``)."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap: str = Field("127.0.0.1:9092", description="host:port[,host:port] of the brokers")
    security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism = Field(
        SaslMechanism.PLAIN, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
    )
    sasl_username: str | None = Field(None, description="SASL user (with SASL_* protocols)")
    sasl_password: SecretStr | None = Field(
        None, description="SASL password (secret, never logged)"
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers (SSL)")
    catalogue_topic: str = Field("catalogue", description="item-catalogue events (key: item id)")
    behaviour_topic: str = Field("behaviour", description="user-behaviour events (key: user id)")
    recommendations_topic: str = Field(
        "recommendations", description="recommendation events we publish (key: user id)"
    )
    deadletter_topic: str = Field(
        "deadletter", description="rejected events: original bytes + x-error-* headers"
    )
    partitions: int = Field(4, ge=1, description="partitions of every topic the worker creates")
    replication: int = Field(1, ge=1, description="replication factor of created topics")
    rebalance_timeout_s: float = Field(
        5.0, gt=0, description="consumer-group rebalance timeout; a few seconds in development"
    )
    session_timeout_s: float = Field(
        10.0, gt=0, description="a dead worker holds its partitions this long"
    )
    # 20 rather than 100 (stream bench, same machine, Tansu): p50/p99 at 250 ev/s 49/80 ms
    # against 68/114 on the same code otherwise (bench/results/stream-steps/5-* against 4-*).
    # The price is idle polling: an idle worker 0.06 cores and Tansu 0.10 against 0.03 and
    # 0.03 (python -m bench.idle_probe). deploy/ sets 500 for Kafka, which answers a fetch as
    # soon as a record arrives.
    fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        le=30_000,
        description="longest a broker may hold the worker's fetch; brokers that hold it "
        "the whole time (Tansu) add it to every event's latency",
    )
    producer_batch_bytes: int = Field(
        262_144,
        ge=16_384,
        le=1_000_000,
        description="largest record batch the worker produces per partition; Faust's 16 KiB "
        "splits a micro-batch's output into several round trips to the broker",
    )

    @model_validator(mode="after")
    def _check_auth(self) -> KafkaSettings:
        sasl = self.security_protocol in (
            SecurityProtocol.SASL_SSL,
            SecurityProtocol.SASL_PLAINTEXT,
        )
        if sasl and (not self.sasl_username or self.sasl_password is None):
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol.value} needs credentials: "
                "set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if self.ssl_cafile is not None and not self.ssl_cafile.is_file():
            raise ConfigError(f"KAFKA_SSL_CAFILE={self.ssl_cafile} is not a readable file")
        return self

    @property
    def broker_url(self) -> str:
        """The bootstrap list as Faust's ``kafka://`` URL."""
        return ";".join(f"kafka://{h.strip()}" for h in self.bootstrap.split(",") if h.strip())

    def cannot_connect(self, exc: BaseException, setting: str = "KAFKA_BOOTSTRAP") -> ConfigError:
        """The error for a first contact with the brokers that failed: which setting, which fix.

        ``setting`` is the variable that named the brokers (a command with its own, such as
        the demo's ``XREC_DEMO_BOOTSTRAP``, passes that)."""
        secured = self.security_protocol is not SecurityProtocol.PLAINTEXT
        return ConfigError(
            f"{setting}={self.bootstrap}: could not connect ({exc}); is a broker running "
            f"there (`xrec broker` runs a local one; {setting} / --bootstrap names yours)"
            + (
                f", and does it take KAFKA_SECURITY_PROTOCOL={self.security_protocol.value} "
                "with these KAFKA_SASL_* / KAFKA_SSL_* settings? aiokafka's log above says which"
                if secured
                else "?"
            )
        )

    def aiokafka_kwargs(self) -> dict[str, object]:
        """Connection keyword arguments shared by every aiokafka client we create."""
        kwargs: dict[str, object] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol.value,
        }
        if self.security_protocol in (SecurityProtocol.SASL_SSL, SecurityProtocol.SASL_PLAINTEXT):
            kwargs["sasl_mechanism"] = self.sasl_mechanism.value
            kwargs["sasl_plain_username"] = self.sasl_username
            assert self.sasl_password is not None
            kwargs["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
        return kwargs


class WorkerSettings(BaseSettings):
    """How the worker processes events (env prefix ``WORKER_``)."""

    model_config = SettingsConfigDict(env_prefix="WORKER_", extra="ignore")

    app_id: str = Field("xrec", description="consumer group and changelog prefix")
    web_host: str = Field("127.0.0.1", description="bind address of the HTTP server")
    web_port: int = Field(6066, ge=1, le=65535, description="HTTP port for /metrics and /healthz")
    table_store: str = Field(
        "memory://", description="Faust table store: memory:// or rocksdb:// (needs rocksdict)"
    )
    data_dir: Path = Field(Path("data/worker"), description="Faust data directory")
    batch_size: int = Field(256, ge=1, description="events per micro-batch (stream.take)")
    batch_within_s: float = Field(0.02, gt=0, description="max wait to fill a micro-batch")
    top_k: int = Field(10, ge=1, le=1000, description="items per recommendation event")
    target_domains: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="domains to recommend in, comma-separated; empty = every domain in the "
        "catalogue",
    )
    diversity: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="diversity step (maximal marginal relevance): how much a list trades "
        "relevance for items unlike those above them; 0 = the nearest items, in order",
    )
    diversity_candidates: int = Field(
        30,
        ge=1,
        le=1000,
        description="with WORKER_DIVERSITY > 0: nearest items the diversity step picks from "
        "(at least WORKER_TOP_K)",
    )
    recent_items: int = Field(200, ge=1, description="consumed items remembered per user/domain")
    max_text_chars: int = Field(4000, ge=1, description="longer text fields are dead-lettered")
    max_event_bytes: int = Field(64_000, ge=1, description="larger events are dead-lettered")
    max_items_per_event: int = Field(
        100, ge=1, description="events naming more items (item_ids) are dead-lettered"
    )
    user_rate_per_s: float = Field(
        20.0,
        ge=0,
        description="sustained events/s one user may send (record-timestamp clock); 0 = no limit",
    )
    user_burst: int = Field(
        200, ge=1, description="events one user may send at once before the rate limit applies"
    )
    bundle_dir: Path | None = Field(
        None,
        description="fitted bundle (xrec eval-transfer --bundle-out); unset = text space",
    )
    bundle_reload_s: float = Field(
        30.0, gt=0, description="how often to look for a new bundle version in WORKER_BUNDLE_DIR"
    )
    store_retry_max_s: float = Field(30.0, gt=0, description="max backoff while the store is down")
    publish_stall_s: float = Field(
        30.0,
        gt=0,
        description="/healthz reports degraded (503) while a batch has waited this long for the "
        "broker's acknowledgements",
    )
    drift_adaptive: bool = Field(
        True,
        description="detect drift and refine the projections online; false = serve as fitted",
    )
    drift_online_mix: bool = Field(
        True,
        description="with a bundle and WORKER_DRIFT_ADAPTIVE: learn how much queries, and a "
        "share of each list, follow short-term interest, per domain, from the stream; false = "
        "the fitted weight, lists not split",
    )
    gc_freeze: bool = Field(
        True,
        description="freeze the heap (gc.freeze) after start-up, after bundle reloads and, once "
        "the catalogue stream goes idle, after every 5,000 catalogue events, so full garbage "
        "collections skip it; false = Python's default",
    )

    # The worker is one thread bound by CPU; asyncio's own loop (selectors, handles, tasks) was
    # ~18% of its samples under load (git show 5984282:bench/results/stream.json, profile).
    # uvloop runs the same loop in C: ~8% less CPU per event (README, stream bench).
    event_loop: EventLoop = Field(
        EventLoop.UVLOOP,
        description="event loop: uvloop (libuv, in C) or asyncio (the standard library's)",
    )

    @field_validator("target_domains", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        # from the environment: "food,kitchen" (a JSON list is taken too)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [d.strip() for d in text.split(",") if d.strip()]
        return value

    @model_validator(mode="after")
    def _check(self) -> WorkerSettings:
        if not self.table_store.startswith(("memory://", "rocksdb://", "aerospike://")):
            raise ConfigError(
                f"WORKER_TABLE_STORE={self.table_store!r} is not a Faust store URL: "
                "use memory:// (tests, demo) or rocksdb:// (production)"
            )
        if self.diversity > 0 and self.diversity_candidates < self.top_k:
            raise ConfigError(
                f"WORKER_DIVERSITY_CANDIDATES={self.diversity_candidates} is below "
                f"WORKER_TOP_K={self.top_k}: the diversity step picks the list from that many "
                "nearest items; raise it (3 x WORKER_TOP_K is a good start) or set "
                "WORKER_DIVERSITY=0"
            )
        return self
