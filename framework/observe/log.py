"""The logger: aiologger, made safe for files, pipes and terminals alike.

aiologger 0.7's default handlers write through an asyncio pipe transport, which
fails on a regular file (``bulkworker run > worker.log``), and closing them
closes the process's own stdout and stderr. The handler here writes to a
duplicate of the descriptor instead: closing it closes only the duplicate.
Lines are console text or JSON (see :mod:`framework.observe.log_format`); the
standard library's records, the application's own included, are written to the
same descriptor in the same format while a worker runs.
"""

import asyncio
import contextlib
import json
import logging
import os
from typing import Any

import attrs
from aiologger.handlers.base import Handler
from aiologger.levels import LogLevel
from aiologger.loggers.json import JsonLogger

from framework.errors import ConfigurationError
from framework.observe.log_format import Format, JsonFormat, chosen_format

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class DescriptorHandler(Handler):  # type: ignore[misc]
    """Writes each record, formatted, to its own duplicate of a file descriptor."""

    def __init__(
        self, fd: int, level: int = LogLevel.NOTSET, line_format: Format | None = None
    ) -> None:
        super().__init__(level=level)
        self.line_format = line_format or JsonFormat()
        self._fd = os.dup(fd)

    @property
    def initialized(self) -> bool:
        return self._fd >= 0

    async def emit(self, record: Any) -> None:
        if self._fd < 0:
            return
        try:
            write_all(self._fd, (self.line_format.format(record) + "\n").encode())
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
    """A logger that finishes every record it was given before it shuts down."""

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


def line_format_for(level: str | int, fd: int, log_format: str) -> Format:
    return chosen_format(log_format, parse_level(level), is_terminal(fd))


def is_terminal(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def build_logger(
    level: str | int = "INFO", fd: int = 1, log_format: str = "auto"
) -> BulkworkerLogger:
    """The framework's logger on ``fd``, in ``log_format`` (auto: console on a terminal)."""
    logger = BulkworkerLogger(level=parse_level(level))
    logger.add_handler(DescriptorHandler(fd, line_format=line_format_for(level, fd, log_format)))
    return logger


LIBRARY_LOGGERS = ("aio_pika", "aiormq")


class LinesHandler(logging.Handler):
    """Standard-library records in the worker's format, on a duplicate descriptor."""

    def __init__(
        self, fd: int = 1, level: int = logging.WARNING, line_format: Format | None = None
    ) -> None:
        super().__init__(level=level)
        self.line_format = line_format or JsonFormat()
        self._fd = os.dup(fd)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            write_all(self._fd, (self.line_format.format(record) + "\n").encode())
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


@attrs.define
class StdlibRoute:
    """What :func:`route_library_logs` changed, to undo it."""

    library: LinesHandler
    application: LinesHandler
    root_level: int


def route_library_logs(
    level: str | int = "INFO", fd: int = 1, log_format: str = "auto"
) -> StdlibRoute:
    """Write the standard library's records to the worker's log, in its format.

    The application's own records (the root logger) at ``level``; aio-pika's and
    aiormq's at WARNING or above whatever ``level`` says: their INFO lines are
    noise here, and so are their records of a dropped connection (see
    :class:`ReconnectNoise`). Returns what :func:`unroute_library_logs` undoes.
    """
    number = parse_level(level)
    line_format = line_format_for(level, fd, log_format)
    library = LinesHandler(fd, max(logging.WARNING, number), line_format)
    library.addFilter(ReconnectNoise())
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.addHandler(library)
        logger.propagate = False
    root = logging.getLogger()
    application = LinesHandler(fd, number, line_format)
    route = StdlibRoute(library, application, root.level)
    root.addHandler(application)
    root.setLevel(number)
    return route


def unroute_library_logs(route: StdlibRoute) -> None:
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.removeHandler(route.library)
        logger.propagate = True
    root = logging.getLogger()
    root.removeHandler(route.application)
    root.setLevel(route.root_level)
    route.library.close()
    route.application.close()
