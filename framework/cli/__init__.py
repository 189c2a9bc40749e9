"""The ``bulkworker`` command."""

from framework.cli.main import main

__all__ = ["main"]
