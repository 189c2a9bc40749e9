"""The JSON logger on files, pipes and terminals, leaving stdout and stderr open."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework import ConfigurationError
from framework.observe.log import build_logger, parse_level
from framework.wiring.container import redact


async def test_logs_json_lines_to_a_regular_file(tmp_path: Path) -> None:
    """Writing to a regular file works (aiologger's own handler fails there)."""
    path = tmp_path / "worker.log"
    with path.open("wb") as file:
        logger = build_logger("INFO", fd=file.fileno())
        await logger.info("hello", extra={"consumer": "Items"})
        await logger.debug("not shown")
        await logger.shutdown()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert 1 == len(records)
    assert ("hello", "Items", "INFO") == (
        records[0]["msg"],
        records[0]["consumer"],
        records[0]["level"],
    )


async def test_logs_to_a_pipe() -> None:
    """Writing to a pipe works too."""
    read_end, write_end = os.pipe()
    try:
        logger = build_logger("INFO", fd=write_end)
        await logger.warning("through a pipe")
        await logger.shutdown()
        os.close(write_end)
        data = os.read(read_end, 65536)
    finally:
        os.close(read_end)
    assert "through a pipe" == json.loads(data)["msg"]


async def test_shutdown_leaves_the_descriptor_open(tmp_path: Path) -> None:
    """Shutting the logger down closes its duplicate only, never the process's stream."""
    path = tmp_path / "out.log"
    with path.open("wb") as file:
        logger = build_logger("INFO", fd=file.fileno())
        await logger.shutdown()
        os.write(file.fileno(), b"still open\n")
    assert "still open\n" == path.read_text()


async def test_shutdown_waits_for_unawaited_records(tmp_path: Path) -> None:
    """Records logged without await are written before shutdown returns."""
    path = tmp_path / "out.log"
    with path.open("wb") as file:
        logger = build_logger("INFO", fd=file.fileno())
        for number in range(50):
            logger.info("fire and forget", extra={"n": number})
        await logger.shutdown()
    assert 50 == len(path.read_text().splitlines())


def test_process_stdout_survives_logger_shutdown_when_redirected_to_a_file(
    tmp_path: Path,
) -> None:
    """In a real process with stdout a file, logging works and print() still works after."""
    script = textwrap.dedent(
        """
        import asyncio, sys
        from framework.observe.log import build_logger

        async def main():
            logger = build_logger("INFO")
            await logger.info("from the logger")
            await logger.shutdown()
            print("print after shutdown")
            print("stderr after shutdown", file=sys.stderr)

        asyncio.run(main())
        """
    )
    out, err = tmp_path / "out.log", tmp_path / "err.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        subprocess.run([sys.executable, "-c", script], stdout=stdout, stderr=stderr, check=True)
    lines = out.read_text().splitlines()
    assert "from the logger" == json.loads(lines[0])["msg"]
    assert "print after shutdown" == lines[1]
    assert "stderr after shutdown\n" == err.read_text()


def test_unknown_level_is_a_clear_error() -> None:
    """A misspelt level names the variable and the choices."""
    with pytest.raises(ConfigurationError, match="BULKWORKER_LOG_LEVEL must be one of DEBUG"):
        parse_level("verbose")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("amqp://guest:guest@localhost:5672/", "amqp://guest:******@localhost:5672/"),
        ("amqp://u:s3cr%40t@h/vh", "amqp://u:******@h/vh"),
        ("amqp://localhost/", "amqp://localhost/"),
    ],
)
def test_passwords_are_redacted(url: str, expected: str) -> None:
    """URLs in logs and errors never show the password."""
    assert expected == redact(url)
