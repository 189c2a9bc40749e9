"""The ``bulkworker`` command: run consumers, check them, publish, look after dead letters."""

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib import metadata
from typing import Any

from framework.cli.checking import check_command
from framework.cli.dead_letters import add_dlq_command, dlq_command
from framework.cli.describing import add_asyncapi_options, asyncapi_command
from framework.cli.exits import EXIT_CODES, EXIT_ERROR
from framework.cli.publishing import add_publish_command, publish_command
from framework.cli.running import (
    add_container_option,
    add_operations_options,
    list_command,
    run_command,
)
from framework.cli.targets import located
from framework.errors import BulkworkerError
from framework.runtime.process import loop_factory


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
        ("asyncapi", "print an AsyncAPI 3.0 document (JSON) of the consumers; needs no broker"),
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
        add_own_options(name, command)
    add_publish_command(commands)
    add_dlq_command(commands)
    return parser


def add_own_options(name: str, command: argparse.ArgumentParser) -> None:
    """The options of one command that takes a TARGET, beside --container."""
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
    if name == "asyncapi":
        add_asyncapi_options(command)


COMMANDS: dict[str, Callable[[argparse.Namespace], int | Coroutine[Any, Any, int]]] = {
    "run": run_command,
    "list": list_command,
    "check": check_command,
    "asyncapi": asyncapi_command,
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
