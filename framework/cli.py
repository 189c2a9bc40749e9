"""The ``bulkworker`` command: run consumers, or list what would run."""

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from dependency_injector import containers

from framework.consumer import ConsumerSettings
from framework.container import Container
from framework.discovery import discover
from framework.errors import BulkworkerError, DiscoveryError
from framework.orchestrator import Orchestrator
from framework.settings import load_environment

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bulkworker",
        description="Run bulk consumers for RabbitMQ.",
        epilog="Exit codes: 0 done, 1 startup or runtime error (one line on stderr), 2 usage.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run",
        help="consume until SIGINT or SIGTERM, then shut down gracefully",
        description="Consume with every consumer in PACKAGE until SIGINT or SIGTERM.",
    )
    listing = commands.add_parser(
        "list",
        help="print each consumer with its effective settings",
        description="Print each consumer in PACKAGE with its effective settings.",
    )
    for command in (run, listing):
        command.add_argument(
            "package",
            nargs="?",
            default="consumers",
            metavar="PACKAGE",
            help="package or module holding the consumers (default: consumers)",
        )
        command.add_argument(
            "--container",
            metavar="MODULE:CLASS",
            default=os.environ.get("BULKWORKER_CONTAINER"),
            help="container class to use (default: $BULKWORKER_CONTAINER, else "
            "framework.Container)",
        )
    return parser


def load_container(spec: str | None) -> containers.Container:
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


def run_command(arguments: argparse.Namespace) -> int:
    container = load_container(arguments.container)
    Orchestrator(arguments.package, container).run()
    return EXIT_OK


def list_command(arguments: argparse.Namespace) -> int:
    container = load_container(arguments.container)
    config: Any = container.config
    load_environment(config)
    flush_interval = float(config.get("flush_interval"))
    rows = [
        settings_row(ConsumerSettings.of(cls, flush_interval))
        for cls in discover(arguments.package)
    ]
    print(format_table(rows))
    return EXIT_OK


def settings_row(settings: ConsumerSettings) -> dict[str, str]:
    return {
        "consumer": settings.name,
        "queues": ",".join(settings.queues),
        "bulk_size": str(settings.bulk_size),
        "prefetch": str(settings.prefetch),
        "flush_interval": f"{settings.flush_interval:g}s",
        "on_success": settings.on_success.name,
        "on_exception": settings.on_exception.name,
        "declare": str(settings.declare),
        "queue_arguments": str(dict(settings.queue_arguments) or "-"),
    }


def format_table(rows: Sequence[dict[str, str]]) -> str:
    headers = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += [
        "  ".join(row[h].ljust(w) for h, w in zip(headers, widths, strict=True)) for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


COMMANDS = {"run": run_command, "list": list_command}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    # Like `python -m`, find the application's packages in the current directory.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return COMMANDS[arguments.command](arguments)
    except BulkworkerError as error:
        print(f"bulkworker: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
