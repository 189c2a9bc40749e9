"""``bulkworker asyncapi``: the AsyncAPI 3.0 document of an application's consumers, as JSON."""

import argparse
import json
import sys
from pathlib import Path

from framework.cli.exits import EXIT_OK
from framework.cli.running import orchestrator_for
from framework.wiring.asyncapi import UNVERSIONED, asyncapi_document, package_version


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
    module = arguments.target.partition(":")[0]
    document = asyncapi_document(
        orchestrator.source,
        orchestrator.container,
        title=arguments.title or module,
        version=arguments.app_version or package_version(module.split(".")[0]),
        description=f"The bulk consumers of {arguments.target}.",
    )
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if arguments.output:
        Path(arguments.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK
