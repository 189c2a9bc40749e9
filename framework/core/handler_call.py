"""One ``handle`` call in a task of its own, so the engine can always stop waiting for it.

A handler that swallows cancellation would otherwise hold its engine forever,
past ``handler_timeout`` and at shutdown. Its task is cancelled, given a short
grace, and then abandoned: kept referenced (a task nobody holds may be
garbage-collected mid-run), never awaited again.

Whatever the handler raises, ``BaseException`` included, is caught inside its
task and returned as a value: ``SystemExit`` and ``KeyboardInterrupt`` escaping
a task would stop the event loop itself, and a ``CancelledError`` the handler
raises is then told apart from the engine's own task being cancelled.
"""

import asyncio
from typing import Any

from framework.core.abc import Handler
from framework.core.message import Message

CallTask = asyncio.Task[BaseException | None]
EXIT_REQUESTS = (SystemExit, KeyboardInterrupt)


async def outcome_of(handler: Handler, messages: list[Message[Any]]) -> BaseException | None:
    """Run ``handler``; return what it raised, or None when it returned."""
    try:
        await handler(messages)
    except BaseException as error:  # user code: every way out of it is an outcome
        return error
    return None


def start_call(handler: Handler, messages: list[Message[Any]]) -> CallTask:
    """The handler call as a task named like the caller's; it runs in a copy of its context.

    Context variables the caller set are seen by ``handle``; those ``handle``
    sets stay with that call, as with any task.
    """
    caller = asyncio.current_task()
    name = None if caller is None else caller.get_name()
    return asyncio.create_task(outcome_of(handler, messages), name=name)


async def stop_call(task: CallTask, grace: float) -> bool:
    """Cancel ``task`` and wait at most ``grace`` seconds; False if it is still running."""
    task.cancel()
    await asyncio.wait((task,), timeout=grace)
    return task.done()


def is_exit_request(error: BaseException | None) -> bool:
    return isinstance(error, EXIT_REQUESTS)
