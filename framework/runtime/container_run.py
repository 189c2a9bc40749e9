"""What a run does to its container: its resources started and modules wired, then undone.

The orchestrator starts the resources (the logger among them) before anything
else and wires the consumers' modules before the startup hooks; a stop unwires
them and shuts the resources down last, whatever got started.
"""

import asyncio

import attrs
from dependency_injector import containers

from framework.core.abc import EventLog
from framework.wiring.assembly import Plan
from framework.wiring.container import open_resources, resolve
from framework.wiring.injection import wire_modules


@attrs.define(eq=False, repr=False)
class ContainerRun:
    """One run's use of a container: resources started, modules wired, both released."""

    container: containers.Container
    wired: bool = attrs.field(default=False, init=False)

    def __repr__(self) -> str:
        return f"<ContainerRun wired={self.wired}>"

    async def open(self) -> EventLog:
        """Start the container's resources in order; the logger is the log of the run."""
        await open_resources(self.container)
        log: EventLog = await resolve(self.container.logger())
        return log

    def wire(self, plan: Plan) -> None:
        """Wire the modules of the plan's consumers and tasks, for ``@inject`` beside them."""
        wire_modules(self.container, [*plan.classes, *plan.tasks])
        self.wired = True

    async def release(self) -> None:
        """Unwire what was wired, then shut the resources down."""
        if self.wired:
            self.container.unwire()
        await self._shut_down_resources()

    async def _shut_down_resources(self) -> None:
        # Each connection closes within budget.connections (robust_connection).
        # A resource whose start a stop cancelled (SIGTERM while connecting) fails
        # its shutdown with that CancelledError: the others are closed all the same.
        # dependency-injector then stops at that resource, so a second round
        # closes the rest.
        task = asyncio.current_task()
        cancelling = task.cancelling() if task is not None else 0
        for _ in range(2):
            try:
                await resolve(self.container.shutdown_resources())
                return
            except asyncio.CancelledError:
                if task is not None and task.cancelling() > cancelling:
                    raise  # this stop itself was cancelled
