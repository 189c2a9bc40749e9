"""Per-key order across worker processes: 3 workers, 4 partitions, one of them SIGKILLed mid-run."""

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest

from framework.amqp.connection import connect
from framework.amqp.publisher import Publisher
from framework.core.consumer import ConsumerSettings
from framework.testing import RecordingLog
from tests.apps.partitioned import PartitionedConsumer
from tests.broker import AMQP_URL, Broker, wait_until
from tests.partitioned import delete_exchange, enable_hash_exchange_plugin, partitioned_name
from tests.test_cli import BULKWORKER, ROOT, environment, kill_if_running

pytestmark = pytest.mark.broker

KEYS = 20
PER_KEY = 500
PARTITIONS = 4
WORKERS = 3
BULK_SIZE = 20


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def start_workers(queue: str, output: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    # The log goes to a file: a pipe nobody reads until the end could fill and stall a worker.
    return subprocess.Popen(
        [*BULKWORKER, "run", "tests.apps.partitioned", "--workers", str(WORKERS)],
        cwd=ROOT,
        env=environment(
            TEST_QUEUE=queue,
            TEST_OUTPUT=str(output),
            TEST_PARTITIONS=str(PARTITIONS),
            TEST_BULK_SIZE=str(BULK_SIZE),
            TEST_HANDLE_SECONDS="0.03",
            BULKWORKER_METRICS="off",
        ),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )


async def publish_in_order(broker: Broker, queue: str) -> None:
    """Each key's 500 messages in sequence, to the exchange with the key as routing key."""
    connection = await connect(AMQP_URL, RecordingLog(), purpose="test")
    publisher = Publisher(connection)
    await publisher.open()
    try:
        # One channel: each key's publishes go out in the order they are made.
        await asyncio.gather(
            *(
                publisher.publish_many(
                    [{"key": f"k{number}", "seq": seq} for seq in range(PER_KEY)],
                    routing_key=f"k{number}",
                    exchange=queue,
                )
                for number in range(KEYS)
            )
        )
    finally:
        await publisher.close()
        await connection.close()


def handled_count(path: Path) -> int:
    """Lines written so far, counted without parsing them (the workers need the CPU)."""
    return path.read_bytes().count(b"\n") if path.exists() else 0


async def wait_for_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while handled_count(path) < count:
        assert time.monotonic() < deadline, f"{handled_count(path)} of {count} within {timeout}s"
        await asyncio.sleep(0.2)


def runs_of(sequence: list[int]) -> list[list[int]]:
    """``sequence`` cut where it goes back: the in-order runs it is made of."""
    runs = [[sequence[0]]]
    for seq in sequence[1:]:
        if seq > runs[-1][-1]:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return runs


async def test_three_workers_keep_every_keys_order_through_a_sigkill(
    broker: Broker, tmp_path: Path
) -> None:
    """20 keys x 500 in order over 3 workers; one SIGKILLed: all arrive, in order, few repeats."""
    await enable_hash_exchange_plugin()
    queue = partitioned_name(broker, "partition-workers", PARTITIONS)
    output = tmp_path / "handled.jsonl"
    log_path = tmp_path / "workers.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        workers = start_workers(queue, output, log)
    try:
        partition_queues = [f"{queue}.p{p}" for p in range(PARTITIONS)]
        await wait_for_registration(broker, partition_queues, workers, log_path)
        registered = time.monotonic() - started
        publishing = asyncio.create_task(publish_in_order(broker, queue))
        await wait_for_lines(output, KEYS * PER_KEY // 3, timeout=40)
        before_kill = records(output)
        busy = Counter(record["pid"] for record in before_kill)
        victim = busy.most_common(1)[0][0]
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        killed_at = len(records(output))
        await publishing
        published = time.monotonic() - started
        await wait_for_lines(output, KEYS * PER_KEY, timeout=60)
        await wait_until(
            lambda: KEYS * PER_KEY == len({(r["key"], r["seq"]) for r in records(output)}),
            timeout=30,
        )
        done = time.monotonic() - started
        workers.send_signal(signal.SIGTERM)
        workers.wait(timeout=45)
    finally:
        kill_if_running(workers)
        await delete_exchange(broker, queue)
    seconds = time.monotonic() - started
    handled = records(output)
    assert 0 == workers.returncode, log_path.read_text()[-2000:]
    assert WORKERS == len(busy), f"not every worker was busy before the kill: {busy}"
    assert killed_at < KEYS * PER_KEY  # killed mid-run

    by_key: dict[str, list[int]] = {}
    for record in handled:
        by_key.setdefault(record["key"], []).append(record["seq"])
    for key, sequence in by_key.items():
        runs = runs_of(sequence)
        assert len(runs) <= 2, f"{key} went back more than once: {[r[:3] for r in runs]}"
        assert list(range(PER_KEY)) == sorted(set(sequence)), key
    duplicates = len(handled) - KEYS * PER_KEY
    victims_queues = {r["queue"] for r in before_kill if r["pid"] == victim}
    prefetch = ConsumerSettings.of(PartitionedConsumer).prefetch
    repeated = [r for r in handled if r["redelivered"] and r["pid"] != victim]
    assert 0 <= duplicates <= prefetch * len(victims_queues)
    assert all(r["queue"] in victims_queues for r in repeated if r["redelivered"])
    taken_over = {r["queue"] for r in handled[killed_at:] if r["pid"] != victim}
    assert victims_queues <= taken_over  # live workers took the killed worker's partitions
    assert 0 == sum([await broker.ready_count(q) for q in partition_queues])
    print(
        f"\n{len(handled)} handled, {duplicates} duplicates (bound {prefetch} x "
        f"{len(victims_queues)} partitions), {len(busy)} workers busy, "
        f"{seconds:.1f}s (registered {registered:.1f}s, "
        f"published {published:.1f}s, all handled {done:.1f}s)"
    )
    # From the first publish to the last message handled; starting three worker
    # processes before it takes 5 to 20 s more, depending on the machine's load.
    assert done - registered < 60


async def wait_for_registration(
    broker: Broker, queues: list[str], workers: subprocess.Popen[bytes], log: Path
) -> None:
    """Every partition queue has a consumer of each worker; says why not when it fails."""
    counts: list[int] = []

    async def all_registered() -> bool:
        exited = workers.poll()
        assert exited is None, f"the workers exited ({exited}):\n{log.read_text()[-3000:]}"
        counts[:] = [await broker.consumer_count(queue) for queue in queues]
        return all(WORKERS == count for count in counts)

    try:
        await wait_until(all_registered, timeout=90)
    except AssertionError as failure:
        log_tail = log.read_text()[-3000:]
        raise AssertionError(f"{failure}: consumers {counts}; log:\n{log_tail}") from None
