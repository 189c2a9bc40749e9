"""The ``bulkworker`` command: run consumers, check them, publish, look after dead letters."""

import argparse
import asyncio
import base64
import functools
import importlib
import json
import os
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import attrs
from aio_pika.abc import AbstractRobustConnection
from dependency_injector import containers

from framework.amqp.connection import connect
from framework.amqp.dead_letters import DeadLetterQueue
from framework.amqp.publisher import CONFIRM_WINDOW, Publisher
from framework.amqp.queue_checks import QueueCheck, check_queues
from framework.amqp.urls import redact
from framework.cli.targets import (
    is_attribute_target,
    load_orchestrator,
    located,
    no_container_option,
    warn_about_unused,
)
from framework.core.consumer import DEFAULT_CONNECTION, ConsumerSettings, listed_cells
from framework.core.decoding import is_json_type
from framework.core.layout import dead_letter_queue_name, origin_of
from framework.core.periodic import TaskSettings
from framework.errors import BulkworkerError, CheckFailedError, DiscoveryError
from framework.runtime.assembly import plan
from framework.runtime.checks import check_injections
from framework.runtime.container import Container
from framework.runtime.log import build_logger, route_library_logs, unroute_library_logs
from framework.runtime.orchestrator import Orchestrator
from framework.runtime.process import loop_factory
from framework.runtime.settings import Deployment, deployment_of, url_variable
from framework.runtime.supervisor import Supervisor, health_path

EXIT_OK = 0
# An exec probe must answer well within the kubelet's own timeout.
PROBE_TIMEOUT = 5.0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_CODES = (
    "exit codes: 0 done, 1 an error or a problem found (said on stderr), 2 wrong usage; "
    "run: 1 also when a consumer's worker died, the status asked for when handle raised "
    "SystemExit, 130 for KeyboardInterrupt"
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkworker", description="Bulk consumers for RabbitMQ.", epilog=EXIT_CODES
    )
    parser.add_argument(
        "--version", action="version", version=f"bulkworker {metadata.version('bulkworker')}"
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to do"
    )
    for name, text in (
        ("run", "consume until SIGINT or SIGTERM, then shut down gracefully"),
        ("list", "print each consumer with its effective settings"),
        ("check", "validate consumers and container, and check their queues on the broker"),
    ):
        command = commands.add_parser(name, help=text, description=text, epilog=EXIT_CODES)
        command.add_argument(
            "target",
            nargs="?",
            default="consumers",
            metavar="TARGET",
            help="MODULE:ATTRIBUTE naming your Orchestrator (its container and hooks are "
            "used), or a PACKAGE or module whose consumers run with --container "
            "(default: consumers)",
        )
        add_container_option(command)
        if name == "run":
            add_operations_options(command)
        if name == "check":
            command.add_argument(
                "--ready",
                metavar="URL",
                help="only ask a running worker's probe (e.g. http://127.0.0.1:8000/health/ready"
                "): exit 0 when it answers 200, else 1 with the failing components; for exec "
                "probes",
            )
    add_publish_command(commands)
    add_dlq_command(commands)
    return parser


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
        "--json", action="store_true", help="one JSON object per dead letter, for scripts"
    )
    show.add_argument(
        "--full", action="store_true", help="whole bodies and errors, not cut to 60 characters"
    )


def add_operations_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--http-port",
        type=int,
        metavar="PORT",
        help="serve /metrics, /health/live and /health/ready on PORT (default: "
        "$BULKWORKER_HTTP_PORT, else none)",
    )
    run.add_argument(
        "--http-host",
        metavar="HOST",
        help="the address to serve HTTP on (default: $BULKWORKER_HTTP_HOST, else 127.0.0.1; "
        "0.0.0.0 for probes from outside)",
    )
    run.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes under one supervisor (default: $BULKWORKER_WORKERS, else 1)",
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


def add_container_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--container",
        metavar="MODULE:CLASS",
        default=None,
        help="container class for a PACKAGE target (default: $BULKWORKER_CONTAINER, "
        "else framework.Container)",
    )


def load_container(given: str | None) -> containers.Container:
    spec = given or os.environ.get("BULKWORKER_CONTAINER")
    if not spec:
        return Container()
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise DiscoveryError(f"--container takes MODULE:CLASS, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise DiscoveryError(f"cannot import container module {module_name!r}: {error}") from None
    container_class = getattr(module, class_name, None)
    if not (
        isinstance(container_class, type)
        and issubclass(container_class, containers.DeclarativeContainer)
    ):
        raise DiscoveryError(f"{spec!r} is not a dependency-injector DeclarativeContainer class")
    container: containers.Container = container_class()
    return container


def configured(container: containers.Container) -> Deployment:
    """The deployment settings a command works with, resolved once."""
    return deployment_of(container)


def orchestrator_for(arguments: argparse.Namespace) -> Orchestrator:
    """The orchestrator the command works with: the application's own, or one for a package."""
    target = arguments.target
    if is_attribute_target(target):
        no_container_option(target, arguments.container)
        orchestrator = load_orchestrator(target)
        apply_operations_options(orchestrator, arguments)
        return orchestrator
    orchestrator = Orchestrator(target, load_container(arguments.container))
    apply_operations_options(orchestrator, arguments)
    # Imports the package, so unused Orchestrators show; URLs are checked where they are used.
    plan(target, orchestrator.container, check_connections=False)
    warn_about_unused(target, arguments.command)
    return orchestrator


def apply_operations_options(orchestrator: Orchestrator, arguments: argparse.Namespace) -> None:
    """--http-port, --http-host and --workers win over the environment."""
    config = orchestrator.container.config
    given = {name: getattr(arguments, name, None) for name in ("http_port", "http_host", "workers")}
    for name, value in given.items():
        if value is not None:
            getattr(config, name).from_value(value)
    settings = getattr(orchestrator.container, "settings", None)
    if any(value is not None for value in given.values()) and settings is not None:
        settings.reset()  # resolved again, with the options


def run_command(arguments: argparse.Namespace) -> int:
    orchestrator = orchestrator_for(arguments)
    settings = orchestrator.settings
    if settings.workers > 1:
        worker = functools.partial(run_worker, arguments.target, arguments.container)
        return Supervisor(settings, worker).run()
    return run_orchestrator(orchestrator)


def run_worker(target: str, container: str | None, index: int) -> None:
    """One worker process of a supervised run: the same target, its own connections."""
    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor alone; it tells the workers
    os.environ["BULKWORKER_WORKER_ID"] = str(index)
    os.environ["BULKWORKER_WORKERS"] = "1"
    os.environ.pop("BULKWORKER_HTTP_PORT", None)  # the supervisor serves HTTP for all
    arguments = argparse.Namespace(target=target, container=container, command="run")
    try:
        orchestrator = orchestrator_for(arguments)
        orchestrator.health_file = health_path(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]), index)
        code = run_orchestrator(orchestrator)
    except BulkworkerError as error:
        print(f"bulkworker: error: worker {index}: {error}", file=sys.stderr)
        code = EXIT_ERROR
    sys.exit(code)


def run_orchestrator(orchestrator: Orchestrator) -> int:
    try:
        orchestrator.run()
    except SystemExit as request:
        # handle asked to exit; the orchestrator stopped gracefully and kept its status.
        return request.code if isinstance(request.code, int) else EXIT_ERROR
    return EXIT_OK


def list_command(arguments: argparse.Namespace) -> int:
    orchestrator = orchestrator_for(arguments)
    found = plan(orchestrator.source, orchestrator.container, check_connections=False)
    if found.settings:
        print(format_table([settings_row(settings) for settings in found.settings]))
    if found.task_settings:
        if found.settings:
            print()
        print(format_table([task_row(settings) for settings in found.task_settings]))
    return EXIT_OK


def task_row(settings: TaskSettings) -> dict[str, str]:
    return {
        "task": settings.name,
        "interval": f"{settings.interval:g}s",
        "run_at_startup": str(settings.run_at_startup),
        "jitter": f"{settings.jitter:g}s",
        "every_worker": str(settings.every_worker),
    }


def settings_row(settings: ConsumerSettings) -> dict[str, str]:
    return {"consumer": settings.name, **listed_cells(settings)}


def format_table(rows: Sequence[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(row[h].ljust(w) for h, w in zip(headers, widths, strict=True)) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


@asynccontextmanager
async def broker_connection(
    settings: Deployment, name: str = DEFAULT_CONNECTION
) -> AsyncIterator[AbstractRobustConnection]:
    """A connection for a command, on connection ``name``; warnings go to stderr."""
    url = settings.url_for(name)
    if url is None:
        raise BulkworkerError(f"connection {name!r} has no URL: set {url_variable(name)}")
    logger = build_logger("WARNING", fd=2)
    library_logs = route_library_logs("WARNING", fd=2)
    try:
        connection = await connect(
            url,
            logger,
            purpose="command",
            connect_timeout=settings.connect_timeout,
        )
        try:
            yield connection
        finally:
            await connection.close()
    finally:
        unroute_library_logs(library_logs)
        await logger.shutdown()


async def check_command(arguments: argparse.Namespace) -> int:
    if arguments.ready:
        return await check_probe(arguments.ready)
    orchestrator = orchestrator_for(arguments)
    container = orchestrator.container
    consumers = plan(orchestrator.source, container)
    check_injections(list(consumers.classes), container)
    checks = []
    for name in sorted({settings.connection for settings in consumers.settings}):
        async with broker_connection(consumers.deployment, name) as connection:
            for settings in consumers.settings:
                if settings.connection == name:
                    checks += await check_queues(connection, settings)
        print(f"broker ({name}): {redact(consumers.deployment.url_for(name) or '')}")
    if checks:
        print(format_table([check_row(check) for check in checks]))
    problems = [check for check in checks if check.problem]
    if problems:
        raise CheckFailedError(
            f"{len(problems)} of {counted(len(checks), 'queue')} "
            f"{'is' if len(problems) == 1 else 'are'} not in order"
        )
    print(
        f"{counted(len(consumers.classes), 'consumer')} and "
        f"{counted(len(checks), 'queue')} in order"
    )
    return EXIT_OK


async def check_probe(url: str) -> int:
    """Ask a probe; one line on what it said."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as session,
            session.get(url) as response,
        ):
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise BulkworkerError(f"{url} did not answer: {error or type(error).__name__}") from None
    if status == 200:
        print(f"{url}: ready")
        return EXIT_OK
    raise CheckFailedError(f"{url} answered {status}: {failing_components(text)}")


def failing_components(text: str) -> str:
    try:
        components = json.loads(text)["components"]
    except (ValueError, KeyError, TypeError):
        return text[:200]
    return "; ".join(
        f"{name}: {part.get('reason')}"
        for name, part in components.items()
        if part.get("status") != "ok"
    )


def check_row(check: QueueCheck) -> dict[str, str]:
    return {
        "consumer": check.consumer,
        "queue": check.queue,
        "role": check.role,
        "status": check.status,
        "messages": "-" if check.messages is None else str(check.messages),
        "consumers": "-" if check.consumers is None else str(check.consumers),
        "detail": check.detail or "-",
    }


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 message``, ``2 messages``: the count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


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


def cut(text: str, width: int | None) -> str:
    if width is None or len(text) <= width:
        return text
    return text[:width] + "…"


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


COMMANDS: dict[str, Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]]] = {
    "run": run_command,
    "list": list_command,
    "check": check_command,
    "publish": publish_command,
    "dlq": dlq_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    # Like `python -m`, find the application's packages in the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        result = COMMANDS[arguments.command](arguments)
        if isinstance(result, int):
            return result
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            return runner.run(result)
    except BulkworkerError as error:
        print(f"bulkworker: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:  # a missing file, a refused socket: the operator's to fix
        print(f"bulkworker: error: {describe_os_error(error)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # the application's own code, imported or run: one line
        print(f"bulkworker: error: {located(error)}", file=sys.stderr)
        return EXIT_ERROR


def describe_os_error(error: OSError) -> str:
    if error.filename:
        return f"{error.strerror or error}: {error.filename}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
