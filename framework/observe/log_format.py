"""How a log line looks: console text for people, one flat JSON object for machines.

Both formats take aiologger's records (the framework's own logger) and the
standard library's (the application's ``logging`` calls, aio-pika's) alike,
so everything a worker says reads the same. Tracebacks are plain text: lines
on the console, one string in JSON. Where a record came from (file, line,
function) is shown only at DEBUG: at other levels it is noise with absolute
paths in it.
"""

import datetime
import json
import logging
import traceback
from typing import Any, Protocol

import attrs

from framework.config.parsing import FORMATS

# Attributes every standard-library record has: whatever else it carries was
# passed as ``extra=`` and belongs in the line.
RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "extra",
    "flatten",
    "serializer_kwargs",
    "taskName",
}


@attrs.frozen
class Line:
    """One log record's parts, whichever logger made it."""

    time: datetime.datetime
    level: str
    logger: str
    message: str
    fields: dict[str, Any]
    traceback: str | None
    where: dict[str, Any]


def line_of(record: Any) -> Line:
    """The parts of an aiologger or standard-library record."""
    extra = getattr(record, "extra", None)
    if not isinstance(extra, dict):
        extra = {k: v for k, v in vars(record).items() if k not in RECORD_ATTRIBUTES}
    return Line(
        time=datetime.datetime.fromtimestamp(record.created, datetime.UTC),
        level=str(record.levelname),
        logger=str(record.name),
        message=message_of(record),
        fields=dict(extra),
        traceback=traceback_of(record),
        where={"file": record.pathname, "line": record.lineno, "function": record.funcName},
    )


def message_of(record: Any) -> str:
    if isinstance(record, logging.LogRecord):
        try:
            return record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the template
            return f"{record.msg} {record.args}"
    # aiologger's records: the message as given (the framework passes no arguments).
    return str(record.msg)


def traceback_of(record: Any) -> str | None:
    exc_info = record.exc_info
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not exc_info or exc_info[0] is None:
        return None
    return "".join(traceback.format_exception(*exc_info)).rstrip("\n")


class Format(Protocol):
    """Turns a record into the text written for it (without the final newline)."""

    def format(self, record: Any) -> str: ...


@attrs.frozen
class JsonFormat:
    """One flat JSON object per line: ``logged_at``, ``level``, ``logger``, ``msg``, the fields."""

    show_where: bool = False

    def format(self, record: Any) -> str:
        line = line_of(record)
        shown: dict[str, Any] = {
            "logged_at": line.time.isoformat(),
            "level": line.level,
            "logger": line.logger,
            "msg": line.message,
        }
        shown.update(line.fields)
        if line.traceback is not None:
            shown["exc_info"] = line.traceback
        if self.show_where:
            shown.update(line.where)
        return json.dumps(shown, default=str, ensure_ascii=False)


@attrs.frozen
class ConsoleFormat:
    """``time level logger: message key=value ...``, then the traceback's own lines."""

    show_where: bool = False

    def format(self, record: Any) -> str:
        line = line_of(record)
        fields = dict(line.fields)
        if self.show_where:
            fields.update(line.where)
        pairs = " ".join(f"{key}={shown_value(value)}" for key, value in fields.items())
        time = line.time.astimezone().strftime("%H:%M:%S.%f")[:-3]
        text = f"{time} {line.level:<7} {line.logger}: {line.message}"
        text = f"{text} {pairs}" if pairs else text
        return f"{text}\n{line.traceback}" if line.traceback else text


def shown_value(value: Any) -> str:
    """A field's value as a reader wants it: bare when it is one word, else quoted JSON."""
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if isinstance(value, str) and (not value or any(c.isspace() or c in '"=' for c in value)):
        return json.dumps(value, ensure_ascii=False)
    return str(text)


def chosen_format(setting: str, level: int, is_terminal: bool) -> Format:
    """The format ``BULKWORKER_LOG_FORMAT`` asks for; ``auto``: console on a terminal."""
    name = setting if setting in FORMATS else ("console" if is_terminal else "json")
    show_where = level <= logging.DEBUG
    return ConsoleFormat(show_where) if name == "console" else JsonFormat(show_where)
