"""``bulkworker run`` and ``list``: the orchestrator a target names, alone or in workers."""

import argparse
import functools
import importlib
import os
import sys
from pathlib import Path
from typing import Any

from dependency_injector import containers

from framework.cli.exits import EXIT_ERROR, EXIT_OK
from framework.cli.targets import (
    is_attribute_target,
    load_orchestrator,
    no_container_option,
    warn_about_unused,
)
from framework.cli.text import format_table
from framework.core.consumer import ConsumerSettings, listed_cells
from framework.core.periodic import TaskSettings
from framework.errors import BulkworkerError, DiscoveryError
from framework.observe.health_file import health_path
from framework.runtime.orchestrator import Orchestrator
from framework.runtime.supervisor import Supervisor
from framework.wiring.assembly import plan
from framework.wiring.container import Container


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


def add_container_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--container",
        metavar="MODULE:CLASS",
        default=None,
        help="the container for a PACKAGE target: a container class, or a function "
        "returning a container (MODULE:create_container), called once per worker "
        "(default: $BULKWORKER_CONTAINER, else framework.Container)",
    )


def load_container(given: str | None) -> containers.Container:
    """The container ``--container`` (or ``$BULKWORKER_CONTAINER``) names, made now.

    ``MODULE:CLASS`` is instantiated; ``MODULE:FUNCTION`` is called without
    arguments and must return a container (the ``create_container()`` of
    docs/how-to/app-settings.md, with the options it fills).
    """
    spec = given or os.environ.get("BULKWORKER_CONTAINER")
    if not spec:
        return Container()
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise DiscoveryError(f"--container takes MODULE:CLASS or MODULE:FUNCTION, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise DiscoveryError(f"cannot import container module {module_name!r}: {error}") from None
    made = make_container(spec, getattr(module, name, None))
    if not isinstance(made, containers.Container):
        raise DiscoveryError(
            f"{spec!r} returned {type(made).__name__}, not a dependency-injector container"
        )
    return made


def make_container(spec: str, found: Any) -> Any:
    """An instance of the container class ``found``, or what the function ``found`` returns."""
    if isinstance(found, type) and issubclass(found, containers.DeclarativeContainer):
        return found()
    if callable(found) and not isinstance(found, type):
        return found()
    raise DiscoveryError(
        f"{spec!r} is neither a dependency-injector DeclarativeContainer class nor a "
        "function returning a container"
    )


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
        worker = functools.partial(
            run_worker, arguments.target, arguments.container, settings.workers
        )
        return Supervisor(settings, worker).run()
    return run_orchestrator(orchestrator)


def run_worker(target: str, container: str | None, count: int, index: int) -> None:
    """One worker process of a supervised run: the same target, its own connections."""
    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor alone; it tells the workers
    os.environ["BULKWORKER_WORKER_ID"] = str(index)
    os.environ["BULKWORKER_WORKER_COUNT"] = str(count)
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
