"""Are the queues a consumer needs in order on the broker? What ``bulkworker check`` shows."""

import asyncio
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import attrs
from aio_pika.abc import AbstractRobustConnection
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from framework.amqp.declarations import broker_reason, declare_on_probe
from framework.amqp.hazards import PROBE_TIMEOUT, drop_head_hazard, moved_to
from framework.amqp.partitions import (
    declare_hash_exchange,
    exchange_exists,
    partition_count_problem,
    plugin_enabled,
    queue_exists,
)
from framework.amqp.publisher import publish_refusal
from framework.core.consumer import ConsumerSettings
from framework.core.partitions import ENABLE_PLUGIN, PLUGIN
from framework.errors import BrokerPluginError, QueueError

HASH_EXCHANGE_ROLE = "consistent-hash exchange"


class QueueStatus(StrEnum):
    """What ``check`` found for one queue; the last three are problems."""

    OK = "ok"
    WILL_BE_DECLARED = "will be declared"
    WARNING = "warning"
    MISSING = "missing"
    DIFFERS = "differs"
    CANNOT_PUBLISH = "cannot publish"
    PLUGIN_MISSING = "plugin missing"


PROBLEMS = (
    QueueStatus.MISSING,
    QueueStatus.DIFFERS,
    QueueStatus.CANNOT_PUBLISH,
    QueueStatus.PLUGIN_MISSING,
)


@attrs.frozen
class QueueCheck:
    """What the broker says about one queue a consumer needs."""

    consumer: str
    queue: str
    role: str
    status: QueueStatus
    detail: str = ""
    messages: int | None = None
    consumers: int | None = None

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


async def check_queues(
    connection: AbstractRobustConnection, settings: ConsumerSettings
) -> list[QueueCheck]:
    """Check every queue ``settings`` needs, changing nothing on the broker."""
    channel = await connection.channel()
    underlay = await channel.get_underlay_channel()
    try:
        checks = [
            await check_exchange(underlay.connection, settings, exchange)
            for exchange in settings.exchanges
        ]
        checks += [
            await check_queue(underlay.connection, settings, queue, arguments, role)
            for queue, arguments, role in settings.declarations()
        ]
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                refusal = await publish_refusal(underlay.connection)
        except TimeoutError:
            refusal = None  # no answer (an alarm?): nothing to report
    finally:
        await channel.close()
    return [with_move_hazards(check, settings, refusal) for check in checks]


def with_move_hazards(
    check: QueueCheck, settings: ConsumerSettings, refusal: str | None
) -> QueueCheck:
    """``check``, marked if copies cannot be published to it or retries push messages out."""
    if check.problem:
        return check
    if refusal is not None and check.queue in moved_to(settings):
        detail = f"this user may not publish retries or dead letters here: {refusal}"
        return attrs.evolve(check, status=QueueStatus.CANNOT_PUBLISH, detail=detail)
    hazard = drop_head_hazard(settings, settings.queue_arguments)
    if hazard is not None and check.role == "queue":
        return attrs.evolve(check, status=QueueStatus.WARNING, detail=hazard)
    return check


async def check_exchange(amqp: Any, settings: ConsumerSettings, exchange: str) -> QueueCheck:
    """The consistent-hash exchange of a partitioned queue: its plugin, its partition count."""
    role = HASH_EXCHANGE_ROLE
    problem = await partition_count_problem(amqp, exchange, settings)
    if problem is not None:
        return QueueCheck(settings.name, exchange, role, QueueStatus.DIFFERS, problem)
    if await exchange_exists(amqp, exchange):
        return await existing_exchange(amqp, settings, exchange)
    if not await plugin_enabled(amqp.url):
        detail = f"the {PLUGIN} plugin is not enabled: {ENABLE_PLUGIN}"
        return QueueCheck(settings.name, exchange, role, QueueStatus.PLUGIN_MISSING, detail)
    if settings.declare:
        return QueueCheck(settings.name, exchange, role, QueueStatus.WILL_BE_DECLARED)
    return QueueCheck(settings.name, exchange, role, QueueStatus.MISSING, "declare is False")


async def existing_exchange(amqp: Any, settings: ConsumerSettings, exchange: str) -> QueueCheck:
    """Declared again (nothing changes when it is right): another type, a plugin gone."""
    role = HASH_EXCHANGE_ROLE
    try:
        await declare_hash_exchange(amqp.url, exchange, settings)
    except BrokerPluginError:
        detail = f"the {PLUGIN} plugin is not enabled: {ENABLE_PLUGIN}"
        return QueueCheck(settings.name, exchange, role, QueueStatus.PLUGIN_MISSING, detail)
    except QueueError as error:
        return QueueCheck(settings.name, exchange, role, QueueStatus.DIFFERS, str(error))
    if await queue_exists(amqp, exchange):
        detail = (
            f"a queue named {exchange!r} exists too: what is published to it through the default "
            "exchange never reaches the partitions; move its messages and delete it"
        )
        return QueueCheck(settings.name, exchange, role, QueueStatus.WARNING, detail)
    detail = f"{settings.partitions} partitions"
    return QueueCheck(settings.name, exchange, role, QueueStatus.OK, detail)


async def check_queue(
    amqp: Any, settings: ConsumerSettings, queue: str, arguments: Mapping[str, Any], role: str
) -> QueueCheck:
    found = await declaration(amqp, queue, passive=True, arguments=None)
    if isinstance(found, Exception):
        if settings.declare:
            return QueueCheck(settings.name, queue, role, QueueStatus.WILL_BE_DECLARED)
        return QueueCheck(settings.name, queue, role, QueueStatus.MISSING, "declare is False")
    # The queue exists, so declaring it again with our arguments changes nothing,
    # and the broker refuses if its arguments differ.
    same = await declaration(amqp, queue, passive=False, arguments=arguments)
    if isinstance(same, Exception):
        return QueueCheck(settings.name, queue, role, QueueStatus.DIFFERS, broker_reason(same))
    return QueueCheck(
        settings.name,
        queue,
        role,
        QueueStatus.OK,
        messages=int(found.message_count or 0),
        consumers=int(found.consumer_count or 0),
    )


async def declaration(
    amqp: Any, queue: str, *, passive: bool, arguments: Mapping[str, Any] | None
) -> Any:
    """The DeclareOk, or the broker's refusal as a value: a check reports, it does not raise."""
    try:
        return await declare_on_probe(amqp, queue, passive=passive, arguments=arguments)
    except (ChannelNotFoundEntity, ChannelPreconditionFailed) as error:
        return error
