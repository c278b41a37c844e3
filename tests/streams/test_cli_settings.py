"""Bad settings end the command with one line naming the environment variable, not a trace."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from streams.settings import KafkaSettings, WorkerSettings


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MODEL_PROVIDER": "gpu"}, "MODEL_PROVIDER: Input should be 'auto', 'cuda' or 'cpu'"),
        ({"WORKER_BATCH_SIZE": "abc"}, "WORKER_BATCH_SIZE: Input should be a valid integer"),
        ({"QDRANT_TIMEOUT_S": "-1"}, "QDRANT_TIMEOUT_S: Input should be greater than 0"),
        ({"XREC_LOG_LEVEL": "verbose"}, "XREC_LOG_LEVEL / --log-level 'verbose' is not a level"),
        ({"KAFKA_SASL_MECHANISM": "SCRAM-SHA512"}, "KAFKA_SASL_MECHANISM: Input should be"),
    ],
)
def test_a_bad_setting_is_one_line_naming_its_variable(env: dict, expected: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", "worker"],
        env={**os.environ, **env, "KAFKA_BOOTSTRAP": "127.0.0.1:1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_a_broker_that_does_not_answer_is_named_with_the_fix() -> None:
    from streams.broker import free_port

    nobody = f"127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", "worker"],
        env={**os.environ, "KAFKA_BOOTSTRAP": nobody},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]  # after aiokafka's own connect errors
    assert last.startswith(f"error: KAFKA_BOOTSTRAP={nobody}: could not connect")
    assert "Traceback" not in result.stderr


def test_a_secret_is_not_echoed() -> None:
    from pydantic import ValidationError

    from streams.cli import settings_error

    try:
        KafkaSettings(sasl_password=["not", "a", "string"])
    except ValidationError as exc:
        message = settings_error(exc)
    segment = next(p for p in message.split("; ") if p.startswith("KAFKA_SASL_PASSWORD"))
    assert "(got" not in segment and "'a'" not in message


def test_target_domains_take_a_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_TARGET_DOMAINS", "food, kitchen")
    assert WorkerSettings().target_domains == ["food", "kitchen"]
    monkeypatch.setenv("WORKER_TARGET_DOMAINS", '["food"]')
    assert WorkerSettings().target_domains == ["food"]


def test_every_flag_of_every_command_has_an_environment_twin() -> None:
    import typer

    from streams.cli import _mount_optional, app

    _mount_optional()

    def untwinned(command: object, path: str) -> list[str]:
        out = [
            f"{path} {p.opts[0]}"
            for p in command.params  # type: ignore[attr-defined]
            if type(p).__name__ == "TyperOption" and p.name != "help" and not p.envvar
        ]
        for name, sub in (getattr(command, "commands", None) or {}).items():
            out += untwinned(sub, f"{path} {name}")
        return out

    root = typer.main.get_command(app)
    assert len(getattr(root, "commands", {})) >= 10  # the optional commands were mounted
    assert untwinned(root, "xrec") == []


def test_a_worker_process_does_not_import_the_benchmarks() -> None:
    # the optional commands are listed by name, and imported only when named
    code = (
        "import sys; sys.argv = ['xrec', 'worker', '--help']\n"
        "from streams.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('bench', 'scipy', 'matplotlib'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stderr
    listing = subprocess.run(
        [sys.executable, "-c", "from streams.cli import main; main()", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "bench-drift" in listing.stdout and "eval-transfer" in listing.stdout


def test_a_command_whose_extra_is_missing_says_which_to_install() -> None:
    # scipy made unimportable, as in an install without the bench extra
    code = (
        "import sys; sys.modules['scipy'] = None\n"
        "sys.argv = ['xrec', 'bench-drift', '--help']\n"
        "from streams.cli import main; main()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: xrec bench-drift needs the bench,drift extra")
    assert "pip install -e '.[bench,drift]'" in result.stderr
