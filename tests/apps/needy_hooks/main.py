"""The orchestrator of the needy application."""

from typing import Any

from dependency_injector.wiring import Provide

from framework import BulkConsumer, Container, Message, Orchestrator, PeriodicTask


class Quiet(BulkConsumer):
    queues = ["needy.quiet"]

    async def handle(self, messages: list[Message[Any]]) -> None:
        return None


class Sweeper(PeriodicTask):
    interval = 60.0

    async def run(self, broom: Any = Provide["broom"]) -> None:
        return None


orchestrator = Orchestrator([Quiet], Container())
tasks_app = Orchestrator([Quiet, Sweeper], Container())


@orchestrator.on_startup
async def warm_up(cache: Any = Provide["cache"]) -> None:
    return None
