"""What a command runs: an application's own Orchestrator, or the consumers of a package.

``MODULE:ATTRIBUTE`` names an :class:`Orchestrator` (or a function returning
one, called without arguments), which runs with its own container and hooks.
A plain ``PACKAGE`` runs the consumers found in it with a container of the
command's; if that package defines an Orchestrator of its own, the command
says so, since that orchestrator's hooks would not run.
"""

import importlib
import inspect
import os
import sys
import traceback
from types import ModuleType
from typing import Any

from framework.errors import DiscoveryError
from framework.runtime.orchestrator import Orchestrator


def is_attribute_target(target: str) -> bool:
    return ":" in target


def load_orchestrator(target: str) -> Orchestrator:
    """The Orchestrator ``MODULE:ATTRIBUTE`` names; a one-line DiscoveryError if it cannot be."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise DiscoveryError(f"{target!r} is not MODULE:ATTRIBUTE (e.g. orders.main:orchestrator)")
    module = import_module(module_name)
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise DiscoveryError(f"module {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    if inspect.isroutine(value):  # a factory, as uvicorn's --factory takes
        try:
            value = value()
        except Exception as error:
            raise DiscoveryError(f"calling {target}() failed: {located(error)}") from None
    if not isinstance(value, Orchestrator):
        what = f"the class {value.__name__}" if isinstance(value, type) else type(value).__name__
        raise DiscoveryError(
            f"{target} is {what}, not an Orchestrator (or a function returning one)"
        )
    return value


def import_module(name: str) -> ModuleType:
    """Import ``name``; whatever goes wrong becomes one line naming the file and line."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise DiscoveryError(f"no module named {name!r} on sys.path") from None
        raise DiscoveryError(f"importing {name!r} failed: {located(error)}") from None
    except Exception as error:
        raise DiscoveryError(f"importing {name!r} failed: {located(error)}") from None


def located(error: BaseException) -> str:
    """``error`` in one line, with the file and line it came from (the innermost frame)."""
    text = f"{type(error).__name__}: {error}".strip()
    if isinstance(error, SyntaxError) and error.filename:
        return f"{text} ({relative(error.filename)})"
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return text
    last = frames[-1]
    return f"{text} ({relative(last.filename)}:{last.lineno})"


def relative(path: str) -> str:
    try:
        shown = os.path.relpath(path)
    except ValueError:
        return path
    return path if shown.startswith("..") else shown


def unused_orchestrators(package: str) -> list[str]:
    """``MODULE:ATTRIBUTE`` of every Orchestrator defined in ``package`` or its modules.

    Looks at the modules already imported, which after discovery are all of them.
    """
    found = []
    for name, module in sorted(sys.modules.items()):
        if name != package and not name.startswith(package + "."):
            continue
        for attribute, value in sorted(vars(module).items()):
            if isinstance(value, Orchestrator) and not attribute.startswith("_"):
                found.append(f"{name}:{attribute}")
    return found


def warn_about_unused(package: str, command: str) -> None:
    for target in unused_orchestrators(package):
        print(
            f"bulkworker: warning: {target} is an Orchestrator, with its own container and "
            f"hooks, that `bulkworker {command} {package}` does not use; to use it, run "
            f"`bulkworker {command} {target}`",
            file=sys.stderr,
        )


def no_container_option(target: str, container: str | None) -> None:
    if container:
        raise DiscoveryError(
            f"--container does not apply to {target}: the Orchestrator brings its own container"
        )
