"""An application that builds its Orchestrator in a function, as uvicorn's factories do."""

from framework import Orchestrator


def create_orchestrator() -> Orchestrator:
    return Orchestrator("tests.apps.envconsumer")
