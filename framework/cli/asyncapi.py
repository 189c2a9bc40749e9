"""``bulkworker asyncapi``: the AsyncAPI 3.0 document of an application's consumers, as JSON."""

import argparse
import json
import sys
from importlib import metadata
from pathlib import Path

from framework.amqp.asyncapi import Connection, Consumer, asyncapi_document
from framework.cli.exits import EXIT_OK
from framework.cli.running import orchestrator_for
from framework.core.consumer import BulkConsumer
from framework.runtime.assembly import Plan, plan
from framework.runtime.settings import url_variable

UNVERSIONED = "unversioned"


def add_asyncapi_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--output",
        metavar="FILE",
        help="write the document to FILE instead of standard output",
    )
    command.add_argument(
        "--title",
        metavar="TEXT",
        help="info.title of the document (default: the target's module or package)",
    )
    command.add_argument(
        "--app-version",
        metavar="TEXT",
        help="info.version of the document (default: the __version__ of the target's top-level "
        f"package, else its installed distribution's version, else {UNVERSIONED!r})",
    )


def asyncapi_command(arguments: argparse.Namespace) -> int:
    orchestrator = orchestrator_for(arguments)
    # A connection without a URL here becomes a server whose host is a variable.
    found = plan(orchestrator.source, orchestrator.container, check_connections=False)
    module = arguments.target.partition(":")[0]
    package = module.split(".")[0]
    document = asyncapi_document(
        consumers(found),
        connections(found),
        title=arguments.title or module,
        version=arguments.app_version or package_version(package),
        description=f"The bulk consumers of {arguments.target}.",
    )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if arguments.output:
        Path(arguments.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def consumers(found: Plan) -> list[Consumer]:
    return [
        Consumer(settings=settings, summary=summary(consumer))
        for consumer, settings in zip(found.classes, found.settings, strict=True)
    ]


def connections(found: Plan) -> list[Connection]:
    names = sorted({settings.connection for settings in found.settings})
    return [
        Connection(name=name, url=found.deployment.url_for(name), variable=url_variable(name))
        for name in names
    ]


def summary(consumer: type[BulkConsumer]) -> str:
    """The first paragraph of the class's own docstring (not one it inherits)."""
    text = consumer.__dict__.get("__doc__") or ""
    return " ".join(text.strip().split("\n\n")[0].split())


def package_version(package: str) -> str:
    module = sys.modules.get(package)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    for distribution in metadata.packages_distributions().get(package, []):
        return metadata.version(distribution)
    return UNVERSIONED
