"""``bulkworker publish``: lines of a file or stdin, each confirmed, nothing half-published."""

import argparse
import json
import sys
from collections.abc import Coroutine
from typing import Any, TextIO

from aio_pika.abc import AbstractRobustConnection

from framework.amqp.publisher import CONFIRM_WINDOW, Publisher
from framework.cli.broker import broker_connection, configured
from framework.cli.exits import EXIT_CODES, EXIT_OK
from framework.cli.text import counted
from framework.core.decoding import is_json_type
from framework.errors import BulkworkerError
from framework.wiring.container import Container


def add_publish_command(commands: Any) -> None:
    publish = commands.add_parser(
        "publish",
        help="publish a JSON-lines file (or stdin) to a queue, with confirms",
        description="Publish one message per line of FILE (or stdin), each a JSON value, to "
        "QUEUE; every message is confirmed by the broker. A bad line stops it all before "
        "anything is published.",
        epilog=EXIT_CODES,
    )
    publish.add_argument(
        "queue",
        metavar="QUEUE",
        help="the queue to publish to; with --exchange, the routing key",
    )
    publish.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="a file with one message per line (default: standard input)",
    )
    publish.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an AMQP header for every message (repeatable); the value is text",
    )
    publish.add_argument(
        "--content-type",
        default="application/json",
        help="the messages' content type (default: application/json, and then each line "
        "must be JSON); any other type sends each line as it is",
    )
    publish.add_argument(
        "--exchange",
        default="",
        help="publish to this exchange instead of straight to QUEUE; a message nothing is "
        "bound for is an error",
    )


def read_lines(source: TextIO, json_lines: bool = True) -> list[bytes]:
    """Every non-blank line, checked to be JSON if asked; all bad lines reported before any send."""
    bodies, errors = [], []
    for number, line in enumerate(source, start=1):
        if not line.strip():
            continue
        try:
            if json_lines:
                json.loads(line)
        except ValueError as error:
            errors.append(f"line {number}: invalid JSON: {error}")
        else:
            bodies.append(line.strip().encode())
    if errors:
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        raise BulkworkerError(f"{shown}. Nothing was published")
    return bodies


def publish_command(arguments: argparse.Namespace) -> Coroutine[Any, Any, int]:
    json_lines = is_json_type(arguments.content_type)
    headers = parse_headers(arguments.header)
    if arguments.file == "-":
        bodies = read_lines(sys.stdin, json_lines)
    else:
        with open(arguments.file, encoding="utf-8") as source:
            bodies = read_lines(source, json_lines)
    return publish_bodies(arguments, bodies, headers)


def parse_headers(given: list[str]) -> dict[str, str]:
    headers = {}
    for item in given:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BulkworkerError(f"--header takes KEY=VALUE, got {item!r}")
        headers[key] = value
    return headers


async def publish_bodies(
    arguments: argparse.Namespace, bodies: list[bytes], headers: dict[str, str]
) -> int:
    async with broker_connection(configured(Container())) as connection:
        if not arguments.exchange:
            await require_queue(connection, arguments.queue)
        publisher = Publisher(connection)
        await publisher.open()
        progress = Progress(len(bodies), sys.stderr)
        for start in range(0, len(bodies), CONFIRM_WINDOW):
            window = bodies[start : start + CONFIRM_WINDOW]
            await publisher.publish_many(
                window,
                routing_key=arguments.queue,
                exchange=arguments.exchange,
                headers=headers or None,
                content_type=arguments.content_type,
                mandatory=True,
            )
            progress.update(start + len(window))
        progress.done()
        await publisher.close()
    where = f"exchange {arguments.exchange!r} with routing key" if arguments.exchange else ""
    target = f"{where} {arguments.queue!r}".strip()
    print(f"published {counted(len(bodies), 'message')} to {target}, each confirmed")
    return EXIT_OK


async def require_queue(connection: AbstractRobustConnection, queue: str) -> None:
    channel = await connection.channel()
    try:
        await channel.declare_queue(queue, passive=True)
    except Exception:
        raise BulkworkerError(
            f"queue {queue!r} does not exist: nothing was published "
            "(start its consumer once, or declare the queue)"
        ) from None
    await channel.close()


class Progress:
    """A progress bar on a terminal; nothing when the output is a file or a pipe."""

    def __init__(self, total: int, stream: TextIO, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.shown = stream.isatty() and total > 0

    def update(self, count: int) -> None:
        if self.shown:
            filled = self.width * count // self.total
            bar = "#" * filled + "." * (self.width - filled)
            self.stream.write(f"\r[{bar}] {count}/{self.total}")
            self.stream.flush()

    def done(self) -> None:
        if self.shown:
            self.stream.write("\n")
