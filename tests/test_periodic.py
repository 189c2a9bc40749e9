"""Periodic tasks: runs on schedule, skipped ticks, exceptions that never end the schedule."""

import asyncio
from typing import Any

import pytest
from dependency_injector import providers
from dependency_injector.wiring import Provide
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from framework import (
    BulkConsumer,
    ConsumerDefinitionError,
    Container,
    Message,
    Orchestrator,
    PeriodicTask,
    Publisher,
)
from framework.core.periodic import TaskSettings
from framework.core.schedule import Schedule
from framework.testing import FakeClock, RecordingLog, TaskHarness
from tests.broker import Broker, wait_until
from tests.conftest import recorded


class Counter:
    def __init__(self) -> None:
        self.count = 0


class AppContainer(Container):
    counter = providers.Singleton(Counter)


class Tally(PeriodicTask):
    interval = 60.0

    async def run(self, counter: Counter = Provide["counter"]) -> None:
        counter.count += 1


async def test_a_task_runs_once_per_interval_with_its_services() -> None:
    """Three intervals, three runs; the injected service is the container's."""
    container = AppContainer()
    async with TaskHarness(Tally, container=container) as harness:
        await harness.advance(59.0)
        assert [] == harness.runs
        await harness.advance(121.0)
    assert 3 == container.counter().count
    assert ["success"] * 3 == [str(run.outcome) for run in harness.runs]


class Slow(PeriodicTask):
    interval = 10.0
    gate: asyncio.Event | None = None

    async def run(self) -> None:
        assert Slow.gate is not None
        await Slow.gate.wait()


async def test_a_tick_while_the_last_run_runs_is_skipped_never_overlapped() -> None:
    """A run that takes three intervals: two ticks skipped, one run at a time."""
    clock, log = FakeClock(), RecordingLog()
    Slow.gate = asyncio.Event()
    schedule = Schedule(TaskSettings.of(Slow), Slow().run, clock=clock, log=log)
    schedule.start()
    clock.advance(10.0)
    await asyncio.sleep(0)
    assert schedule.running
    clock.advance(10.0)
    clock.advance(10.0)
    assert 2 == schedule.skipped
    Slow.gate.set()
    await schedule.wait_for_run()
    clock.advance(10.0)
    await schedule.wait_for_run()
    assert (2, 2) == (schedule.runs, schedule.skipped)
    await schedule.stop(1.0)


class Flaky(PeriodicTask):
    interval = 5.0
    run_at_startup = True
    calls = 0

    async def run(self) -> None:
        Flaky.calls += 1
        if Flaky.calls == 2:
            raise RuntimeError("the store was down")


async def test_an_exception_is_logged_and_the_schedule_goes_on() -> None:
    """The failing run is logged with its traceback; the runs before and after happen."""
    Flaky.calls = 0
    async with TaskHarness(Flaky) as harness:
        await harness.advance(0.0)
        await harness.advance(10.0)
    assert ["success", "error", "success"] == [str(run.outcome) for run in harness.runs]
    assert isinstance(harness.runs[1].error, RuntimeError)
    [message] = harness.log.messages("error")
    assert "periodic task raised: it runs again at its next tick" == message


async def test_jitter_delays_each_tick_by_up_to_its_amount() -> None:
    """With jitter 4 and chance 0.5, the first run comes at 10 + 2 seconds."""

    class Jittery(PeriodicTask):
        interval = 10.0
        jitter = 4.0

        async def run(self) -> None:
            return None

    async with TaskHarness(Jittery, chance=lambda: 0.5) as harness:
        await harness.advance(11.9)
        assert [] == harness.runs
        await harness.advance(0.1)
    assert 1 == len(harness.runs)


async def test_a_stop_waits_for_the_running_task_then_cancels_it() -> None:
    """Within the limit the run finishes; past it, it is cancelled and the stop says so."""
    clock, log = FakeClock(), RecordingLog()
    Slow.gate = asyncio.Event()
    schedule = Schedule(TaskSettings.of(Slow), Slow().run, clock=clock, log=log)
    schedule.start()
    clock.advance(10.0)
    await asyncio.sleep(0)
    assert schedule.running
    assert await schedule.stop(0.05) is False
    assert not schedule.running
    assert ["periodic task still running at shutdown: cancelled"] == log.messages("warning")


@pytest.mark.parametrize(
    ("attributes", "problem"),
    [
        ({"interval": 0}, "Bad.interval must be a number of seconds above 0"),
        ({"interval": 1, "jitter": -1}, "Bad.jitter must be a number of seconds of at least 0"),
        ({"interval": 1, "every_worker": "yes"}, "Bad.every_worker must be True or False"),
    ],
)
def test_declarations_are_checked_at_class_definition(
    attributes: dict[str, Any], problem: str
) -> None:
    """A wrong schedule fails when the class is defined, naming class and attribute."""

    async def run(self: Any) -> None:
        return None

    with pytest.raises(ConsumerDefinitionError, match=problem):
        type("Bad", (PeriodicTask,), {"run": run, **attributes})


def test_only_worker_zero_runs_a_task_unless_every_worker() -> None:
    """With --workers N a task runs once, in worker 0, unless every_worker is set."""

    class Everywhere(Tally):
        every_worker = True

    assert [True, False] == [TaskSettings.of(Tally).runs_in(index) for index in (0, 1)]
    assert TaskSettings.of(Everywhere).runs_in(3)


async def test_a_task_publishes_on_the_broker_through_an_orchestrator(broker: Broker) -> None:
    """On RabbitMQ: a task publishing every 0.2 s; a consumer of the same app receives them."""
    queue = broker.queue_name("periodic")
    await broker.declare(queue)
    received: list[Any] = []

    class Heartbeat(PeriodicTask):
        interval = 0.2
        run_at_startup = True

        async def run(self, publisher: Publisher = Provide["publisher"]) -> None:
            await publisher.publish({"beat": True}, routing_key=queue)

    class Listener(BulkConsumer):
        queues = [queue]
        flush_interval = 0.1

        async def handle(self, messages: list[Message[Any]]) -> None:
            received.extend(m.body for m in messages)

    container, log = recorded()
    orchestrator = Orchestrator([Listener, Heartbeat], container)
    runs_before = periodic_runs("Heartbeat")
    async with orchestrator:
        await wait_until(lambda: len(received) >= 3, timeout=10)
    assert {"beat": True} == received[0]
    assert periodic_runs("Heartbeat") - runs_before >= 3
    assert ["Heartbeat"] == [s.settings.name for s in orchestrator.schedules]
    assert "periodic task started" in log.messages("info")


def test_list_shows_the_periodic_tasks() -> None:
    """`bulkworker list` prints the tasks under the consumers, with their schedules."""
    from tests.test_cli import run_cli

    result = run_cli("list", "tests.apps.with_task")
    assert 0 == result.returncode, result.stderr
    tasks = result.stdout.split("\n\n")[1].splitlines()
    assert ["task", "interval", "run_at_startup", "jitter", "every_worker"] == tasks[0].split()
    assert ["Cleanup", "300s", "False", "5s", "False"] == tasks[1].split()


def periodic_runs(task: str) -> float:
    """bulkworker_periodic_runs_total{task, outcome="success"} as /metrics shows it."""
    text = generate_latest().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "bulkworker_periodic_runs_total"
        and sample.labels == {"task": task, "outcome": "success"}
    )


@pytest.mark.parametrize("raised", [asyncio.CancelledError, KeyboardInterrupt, SystemExit])
async def test_a_run_raising_a_base_exception_is_an_error_and_the_schedule_goes_on(
    raised: type[BaseException],
) -> None:
    """User code raising CancelledError, KeyboardInterrupt or SystemExit: logged, runs go on."""
    calls = 0

    class Hostile(PeriodicTask):
        interval = 5.0

        async def run(self) -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise raised()

    async with TaskHarness(Hostile) as harness:
        await harness.advance(10.0)
    assert ["error", "success"] == [str(run.outcome) for run in harness.runs]
    assert isinstance(harness.runs[0].error, raised)
