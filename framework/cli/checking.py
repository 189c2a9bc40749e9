"""``bulkworker check``: consumers, container and queues; or a running worker's probe."""

import argparse
import json

import aiohttp

from framework.amqp.queue_checks import QueueCheck, check_queues
from framework.amqp.urls import redact
from framework.cli.broker import broker_connection
from framework.cli.exits import EXIT_OK, PROBE_TIMEOUT
from framework.cli.running import orchestrator_for
from framework.cli.text import counted, format_table
from framework.errors import BulkworkerError, CheckFailedError
from framework.wiring.assembly import plan
from framework.wiring.checks import (
    check_hook_injections,
    check_injections,
    check_task_injections,
)


async def check_command(arguments: argparse.Namespace) -> int:
    if arguments.ready:
        return await check_probe(arguments.ready)
    orchestrator = orchestrator_for(arguments)
    container = orchestrator.container
    consumers = plan(orchestrator.source, container)
    check_injections(list(consumers.classes), container)
    check_task_injections(consumers.tasks, container)
    check_hook_injections(orchestrator.hooks, container)
    checks = []
    for name in sorted({settings.connection for settings in consumers.settings}):
        async with broker_connection(consumers.deployment, name) as connection:
            for settings in consumers.settings:
                if settings.connection == name:
                    checks += await check_queues(connection, settings)
        print(f"broker ({name}): {redact(consumers.deployment.url_for(name) or '')}")
    if checks:
        print(format_table([check_row(check) for check in checks]))
    problems = [check for check in checks if check.problem]
    if problems:
        raise CheckFailedError(
            f"{len(problems)} of {counted(len(checks), 'queue')} "
            f"{'is' if len(problems) == 1 else 'are'} not in order"
        )
    print(
        f"{counted(len(consumers.classes), 'consumer')} and "
        f"{counted(len(checks), 'queue')} in order"
    )
    return EXIT_OK


async def check_probe(url: str) -> int:
    """Ask a probe; one line on what it said."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT)) as session,
            session.get(url) as response,
        ):
            status, text = response.status, await response.text()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise BulkworkerError(f"{url} did not answer: {error or type(error).__name__}") from None
    if status == 200:
        print(f"{url}: ready")
        return EXIT_OK
    raise CheckFailedError(f"{url} answered {status}: {failing_components(text)}")


def failing_components(text: str) -> str:
    try:
        components = json.loads(text)["components"]
    except (ValueError, KeyError, TypeError):
        return text[:200]
    return "; ".join(
        f"{name}: {part.get('reason')}"
        for name, part in components.items()
        if part.get("status") != "ok"
    )


def check_row(check: QueueCheck) -> dict[str, str]:
    return {
        "consumer": check.consumer,
        "queue": check.queue,
        "role": check.role,
        "status": check.status,
        "messages": "-" if check.messages is None else str(check.messages),
        "consumers": "-" if check.consumers is None else str(check.consumers),
        "detail": check.detail or "-",
    }
