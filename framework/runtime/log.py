"""The JSON logger: aiologger, made safe for files, pipes and terminals alike.

aiologger 0.7's default handlers write through an asyncio pipe transport, which
fails on a regular file (``bulkworker run > worker.log``), and closing them
closes the process's own stdout and stderr. The handler here writes to a
duplicate of the descriptor instead: closing it closes only the duplicate.
"""

import asyncio
import contextlib
import datetime
import json
import logging
import os
from typing import Any

from aiologger.formatters.json import ExtendedJsonFormatter
from aiologger.handlers.base import Handler
from aiologger.levels import LogLevel
from aiologger.loggers.json import JsonLogger

from framework.errors import ConfigurationError

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class DescriptorHandler(Handler):  # type: ignore[misc]
    """Writes each record as one JSON line to its own duplicate of a file descriptor."""

    def __init__(self, fd: int, level: int = LogLevel.NOTSET) -> None:
        super().__init__(level=level)
        self.formatter = ExtendedJsonFormatter()
        self._fd = os.dup(fd)

    @property
    def initialized(self) -> bool:
        return self._fd >= 0

    async def emit(self, record: Any) -> None:
        if self._fd < 0:
            return
        try:
            write_all(self._fd, (self.formatter.format(record) + "\n").encode())
        except OSError as error:
            await self.handle_error(record, error)

    async def handle_error(self, record: Any, exception: Exception) -> None:
        # aiologger's own fallback calls datetime.utcnow(), deprecated on 3.12+.
        line = {
            "level": "ERROR",
            "msg": "a log record could not be written",
            "error": repr(exception),
        }
        with contextlib.suppress(OSError):
            write_all(2, (json.dumps(line) + "\n").encode())

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_all(fd: int, data: bytes) -> None:
    # One line per call, written whole: a log line is small and a blocking
    # write keeps lines in order, as the standard library's logging does.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class BulkworkerLogger(JsonLogger):  # type: ignore[misc]
    """A JSON logger that finishes every record it was given before it shuts down."""

    def __init__(self, level: int) -> None:
        super().__init__(name="bulkworker", level=level, flatten=True)
        self._pending: set[asyncio.Task[Any]] = set()

    def _log(self, *args: Any, **kwargs: Any) -> "asyncio.Task[Any]":
        task: asyncio.Task[Any] = super()._log(*args, **kwargs)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def shutdown(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await super().shutdown()


def parse_level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name not in LEVELS:
        raise ConfigurationError(
            f"BULKWORKER_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {level!r}"
        )
    return int(LogLevel[name])


def build_logger(level: str | int = "INFO", fd: int = 1) -> BulkworkerLogger:
    logger = BulkworkerLogger(level=parse_level(level))
    logger.add_handler(DescriptorHandler(fd))
    return logger


LIBRARY_LOGGERS = ("aio_pika", "aiormq")


class JsonLinesHandler(logging.Handler):
    """Standard-library records as the same JSON lines, on a duplicate descriptor."""

    def __init__(self, fd: int = 1, level: int = logging.WARNING) -> None:
        super().__init__(level=level)
        self._fd = os.dup(fd)

    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "logged_at": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc_text"] = logging.Formatter().formatException(record.exc_info)
        try:
            write_all(self._fd, (json.dumps(line, default=str) + "\n").encode())
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        super().close()


# What aiormq and aio-pika log when a connection drops or a reconnection attempt
# fails, as (logger, start of the message template). The framework's connection
# logs each of these events itself, once, with the URL and the cause.
RECONNECT_NOISE = (
    ("aiormq.connection", "Cancelling cause reader exited abnormally"),
    ("aiormq.connection", "Unexpected connection close from remote"),
    ("aiormq.connection", "error when creating transport"),
)
# A robust channel's close callback fails on the dead connection; aio-pika
# reopens the channel anyway once the connection is back.
CHANNEL_CLOSE_CALLBACK = "RobustChannel._on_close"


class ReconnectNoise(logging.Filter):
    """Drops the client libraries' records of a connection drop, logged by the framework."""

    def filter(self, record: logging.LogRecord) -> bool:
        template = str(record.msg)
        if any(
            record.name == name and template.startswith(start) for name, start in RECONNECT_NOISE
        ):
            return False
        is_callback_error = record.name == "aio_pika.tools" and template.startswith("Callback")
        return not (is_callback_error and CHANNEL_CLOSE_CALLBACK in record.getMessage())


def route_library_logs(level: str | int = "INFO", fd: int = 1) -> JsonLinesHandler:
    """Send aio-pika's and aiormq's own records to the JSON log instead of stderr.

    At WARNING or above whatever ``level`` says: their INFO lines are noise here,
    and so are their records of a dropped connection (see :class:`ReconnectNoise`).
    Returns the handler, for :func:`unroute_library_logs`.
    """
    handler = JsonLinesHandler(fd, level=max(logging.WARNING, parse_level(level)))
    handler.addFilter(ReconnectNoise())
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.addHandler(handler)
        library.propagate = False
    return handler


def unroute_library_logs(handler: JsonLinesHandler) -> None:
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.removeHandler(handler)
        library.propagate = True
    handler.close()
