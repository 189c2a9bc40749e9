"""``bulkworker dlq show|replay``: dead letters looked at, or moved back."""

import argparse
import base64
import json
from typing import Any

import attrs

from framework.amqp.dead_letters import DeadLetterQueue
from framework.amqp.publisher import Publisher
from framework.cli.broker import broker_connection, configured
from framework.cli.exits import EXIT_CODES, EXIT_OK
from framework.cli.text import counted, cut, format_table
from framework.core.consumer import DEFAULT_CONNECTION
from framework.core.layout import dead_letter_queue_name, origin_of
from framework.wiring.container import Container


def add_dlq_command(commands: Any) -> None:
    dlq = commands.add_parser(
        "dlq", help="show or replay dead-lettered messages", epilog=EXIT_CODES
    )
    actions = dlq.add_subparsers(
        dest="action", required=True, metavar="ACTION", help="look, or move them back"
    )
    for name, text in (
        ("show", "list dead-lettered messages with their reasons; they stay where they are"),
        ("replay", "move dead-lettered messages back to their queue: confirmed publish, then ack"),
    ):
        action = actions.add_parser(name, help=text, description=text, epilog=EXIT_CODES)
        add_dead_letter_options(action, default_limit=20 if name == "show" else 1_000_000)
    show = actions.choices["show"]
    show.add_argument(
        "--json",
        action="store_true",
        help="JSON lines: one JSON object per line, a line per dead letter (not one JSON "
        "array); read it with `jq -c`, or line by line",
    )
    show.add_argument(
        "--full", action="store_true", help="whole bodies and errors, not cut to 60 characters"
    )


def add_dead_letter_options(action: argparse.ArgumentParser, default_limit: int) -> None:
    action.add_argument(
        "queue", metavar="QUEUE", help="the consumed queue (QUEUE.dlq is read) or a .dlq"
    )
    action.add_argument(
        "--limit",
        type=int,
        default=default_limit,
        help=f"at most this many dead letters (default: {default_limit:,})",
    )
    action.add_argument(
        "--connection",
        default=DEFAULT_CONNECTION,
        metavar="NAME",
        help="the named connection the queue lives on (its URL from "
        "BULKWORKER_AMQP_URL_<NAME>; default: the default connection)",
    )
    action.add_argument(
        "--reason",
        metavar="REASON",
        help="only dead letters with this reason (exception, invalid, undecodable, "
        "rejected, retries-exhausted...); the others stay where they are, in order",
    )


async def dlq_command(arguments: argparse.Namespace) -> int:
    name = dead_letter_queue_name(arguments.queue)
    origin = origin_of(arguments.queue)
    async with broker_connection(configured(Container()), arguments.connection) as connection:
        queue = DeadLetterQueue(connection, name, origin)
        if arguments.action == "show":
            letters, waiting = await queue.show(arguments.limit, arguments.reason)
            show_dead_letters(letters, waiting, name, arguments)
            return EXIT_OK
        publisher = Publisher(connection)
        await publisher.open()
        moved = await queue.replay(publisher, arguments.limit, arguments.reason)
        await publisher.close()
    total = sum(moved.values())
    where = ", ".join(f"{count:,} to {queue!r}" for queue, count in sorted(moved.items()))
    print(f"replayed {counted(total, 'dead letter')} from {name!r}: {where or 'none'}")
    return EXIT_OK


def show_dead_letters(
    letters: list[Any], waiting: int, name: str, arguments: argparse.Namespace
) -> None:
    if arguments.json:
        for letter in letters:
            print(json.dumps(dead_letter_record(letter), ensure_ascii=False))
        return
    rows = [dead_letter_row(letter, None if arguments.full else 60) for letter in letters]
    if rows:
        print(format_table(rows))
    which = f" with reason {arguments.reason!r}" if arguments.reason else ""
    print(
        f"{len(letters):,} of {counted(waiting, 'dead letter')} in {name!r} shown{which}; "
        "all stay there"
    )


def dead_letter_row(letter: Any, width: int | None = 60) -> dict[str, str]:
    body = letter.body.decode("utf-8", "replace")
    return {
        "message_id": letter.message_id or "-",
        "reason": letter.reason,
        "attempts": str(letter.attempts),
        "dead_lettered_at": letter.dead_lettered_at,
        "error": cut(letter.error, width),
        "body": cut(body, width),
    }


def dead_letter_record(letter: Any) -> dict[str, Any]:
    """A dead letter as one JSON object: the body as JSON if it is, else as text or base64."""
    record = attrs.asdict(letter)
    raw: bytes = record.pop("body")
    try:
        record["body"] = json.loads(raw)
    except ValueError:
        try:
            record["body_text"] = raw.decode()
        except UnicodeDecodeError:
            record["body_base64"] = base64.b64encode(raw).decode()
    return record
