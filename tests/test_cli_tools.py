"""`bulkworker publish`, `dlq show`, `dlq replay` and `check` against the real RabbitMQ."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tests.broker import Broker
from tests.test_cli import ROOT, assert_one_line_error, environment, run_cli


def run_with_input(text: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework.cli", *arguments],
        cwd=ROOT,
        env=environment(),
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_publish_sends_every_line_confirmed(broker: Broker, tmp_path: Path) -> None:
    """A JSON-lines file becomes one message per line; the count is said at the end."""
    queue = broker.queue_name("publish")
    await broker.declare(queue)
    lines = tmp_path / "items.jsonl"
    lines.write_text("\n".join(json.dumps({"id": n}) for n in range(1500)) + "\n\n")
    result = run_cli("publish", queue, str(lines))
    assert 0 == result.returncode, result.stderr
    assert f"published 1,500 messages to '{queue}', each confirmed\n" == result.stdout
    messages = await broker.drain(queue)
    assert list(range(1500)) == [json.loads(m.body)["id"] for m in messages]
    assert {"application/json"} == {m.content_type for m in messages}


async def test_publish_reads_stdin(broker: Broker) -> None:
    """Without FILE, lines come from standard input."""
    queue = broker.queue_name("stdin")
    await broker.declare(queue)
    result = run_with_input('{"a": 1}\n[2]\n"three"\n', "publish", queue)
    assert 0 == result.returncode, result.stderr
    assert [{"a": 1}, [2], "three"] == [json.loads(m.body) for m in await broker.drain(queue)]


async def test_publish_refuses_a_file_with_bad_lines(broker: Broker) -> None:
    """A bad line is named by its number, and nothing at all is published."""
    queue = broker.queue_name("bad-lines")
    await broker.declare(queue)
    result = run_with_input('{"ok": 1}\n{broken\n{"ok": 2}\n', "publish", queue)
    assert_one_line_error(result, "line 2: invalid JSON")
    assert "Nothing was published" in result.stderr
    assert 0 == await broker.ready_count(queue)


async def test_publish_to_a_missing_queue_is_an_error(broker: Broker) -> None:
    """Publishing to a queue that does not exist says so instead of losing the messages."""
    queue = broker.queue_name("nowhere")
    result = run_with_input('{"a": 1}\n', "publish", queue)
    assert_one_line_error(result, f"queue '{queue}' does not exist: nothing was published")


async def dead_letters(broker: Broker, queue: str) -> None:
    await broker.declare(queue)
    await broker.declare(f"{queue}.dlq")
    for number, reason in enumerate(["rejected", "exception", "invalid"]):
        await broker.publish(
            f"{queue}.dlq",
            {"n": number},
            message_id=f"m{number}",
            headers={
                "x-bulkworker-reason": reason,
                "x-bulkworker-error": f"error {number}",
                "x-bulkworker-queue": queue,
                "x-bulkworker-attempts": number,
                "x-bulkworker-dead-lettered-at": "2026-11-27T10:00:00+00:00",
                "x-trace": "kept",
            },
        )


async def test_dlq_show_lists_reasons_and_keeps_the_messages(broker: Broker) -> None:
    """`dlq show` prints each dead letter with its reason; the queue is left as it was."""
    queue = broker.queue_name("show")
    await dead_letters(broker, queue)
    result = run_cli("dlq", "show", queue, "--limit", "2")
    assert 0 == result.returncode, result.stderr
    header, first, second, summary = result.stdout.strip().splitlines()
    assert header.split()[:4] == ["message_id", "reason", "attempts", "dead_lettered_at"]
    assert first.split()[:3] == ["m0", "rejected", "0"]
    assert second.split()[:3] == ["m1", "exception", "1"]
    assert f"2 of 3 dead letters in '{queue}.dlq' shown; all stay there" == summary
    assert 3 == await broker.ready_count(f"{queue}.dlq")


async def test_dlq_replay_moves_dead_letters_back(broker: Broker) -> None:
    """`dlq replay` publishes each back to its queue, confirmed, then removes it."""
    queue = broker.queue_name("replay")
    await dead_letters(broker, queue)
    result = run_cli("dlq", "replay", f"{queue}.dlq", "--limit", "2")
    assert 0 == result.returncode, result.stderr
    assert f"replayed 2 dead letters from '{queue}.dlq': 2 to '{queue}'\n" == result.stdout
    replayed = await broker.drain(queue)
    assert [{"n": 0}, {"n": 1}] == [json.loads(m.body) for m in replayed]
    assert [{"x-trace": "kept"}, {"x-trace": "kept"}] == [m.headers for m in replayed]
    assert 1 == await broker.ready_count(f"{queue}.dlq")


async def test_check_reports_queues_in_order(broker: Broker) -> None:
    """`check` prints a row per queue and exits 0 when all is well."""
    queue = broker.queue_name("check-ok")
    await broker.declare(queue)
    result = run_cli("check", "tests.apps.checked", TEST_QUEUE=queue)
    assert 0 == result.returncode, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[2:-1]]
    assert [["Checked", queue, "queue", "ok", "0", "0", "-"]] == rows[:1]
    assert ["Checked", f"{queue}.dlq", "dead-letter", "queue", "will", "be", "declared"] == rows[1][
        :7
    ]
    assert result.stdout.endswith("1 consumer and 2 queues in order\n")


async def test_check_fails_on_a_missing_or_different_queue(broker: Broker) -> None:
    """A missing queue (declare = False) or one with other arguments: a row says so, exit 1."""
    missing = broker.queue_name("check-missing")
    result = run_cli("check", "tests.apps.checked", TEST_QUEUE=missing, TEST_DECLARE="0")
    assert 1 == result.returncode
    assert "missing" in result.stdout
    assert "bulkworker: error: 2 of 2 queues are not in order" in result.stderr
    different = broker.queue_name("check-differs")
    await broker.declare(different, **{"x-max-length": 5})
    result = run_cli(
        "check", "tests.apps.checked", TEST_QUEUE=different, TEST_ARGUMENTS='{"x-max-length": 9}'
    )
    assert 1 == result.returncode
    assert "inequivalent arg 'x-max-length'" in result.stdout
    assert 0 == await broker.consumer_count(different)


def test_check_catches_an_unresolvable_injection() -> None:
    """`check` fails without touching the broker when the container lacks a service."""
    result = run_cli("check", "consumers")
    assert_one_line_error(result, "ItemsConsumer.handle parameter 'store' asks for 'store'")


async def test_dlq_show_json_gives_every_field_one_object_per_line(broker: Broker) -> None:
    """`dlq show --json`: scripts get each dead letter whole, the body as JSON."""
    queue = broker.queue_name("show-json")
    await dead_letters(broker, queue)
    result = run_cli("dlq", "show", queue, "--json")
    assert 0 == result.returncode, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert ["m0", "m1", "m2"] == [record["message_id"] for record in records]
    assert {"n": 2} == records[2]["body"]
    assert ("invalid", "error 2", queue, 2) == (
        records[2]["reason"],
        records[2]["error"],
        records[2]["queue"],
        records[2]["attempts"],
    )


async def test_dlq_show_full_does_not_cut_long_bodies(broker: Broker) -> None:
    """Without --full a body is cut to 60 characters; with it, it is shown whole."""
    queue = broker.queue_name("show-full")
    await broker.declare(f"{queue}.dlq")
    long_text = "x" * 200
    await broker.publish(f"{queue}.dlq", {"text": long_text}, message_id="long")
    cut = run_cli("dlq", "show", queue)
    whole = run_cli("dlq", "show", queue, "--full")
    assert long_text not in cut.stdout
    assert long_text in whole.stdout
    assert "1 of 1 dead letter in" in whole.stdout


async def test_dlq_replay_by_reason_leaves_the_others_in_order(broker: Broker) -> None:
    """`dlq replay --reason exception` moves only those; the rest stay, in their order."""
    queue = broker.queue_name("replay-reason")
    await dead_letters(broker, queue)
    await broker.publish(
        f"{queue}.dlq", {"n": 3}, message_id="m3", headers={"x-bulkworker-reason": "exception"}
    )
    result = run_cli("dlq", "replay", queue, "--reason", "exception")
    assert 0 == result.returncode, result.stderr
    assert f"replayed 2 dead letters from '{queue}.dlq': 2 to '{queue}'\n" == result.stdout
    assert [{"n": 1}, {"n": 3}] == [json.loads(m.body) for m in await broker.drain(queue)]
    left = await broker.drain(f"{queue}.dlq")
    assert ["m0", "m2"] == [m.message_id for m in left]


async def test_publish_with_headers_content_type_and_exchange(broker: Broker) -> None:
    """--header, --content-type and --exchange reach the broker as given."""
    queue = broker.queue_name("publish-options")
    await broker.declare(queue)
    result = run_with_input(
        "plain text line\n",
        "publish",
        queue,
        "--header",
        "tenant=acme",
        "--header",
        "source=cli",
        "--content-type",
        "text/plain",
    )
    assert 0 == result.returncode, result.stderr
    assert f"published 1 message to '{queue}', each confirmed" == result.stdout.strip()
    [message] = await broker.drain(queue)
    assert (b"plain text line", "text/plain") == (message.body, message.content_type)
    assert {"tenant": "acme", "source": "cli"} == message.headers
    unbound = run_with_input('{"a": 1}\n', "publish", "nothing.bound", "--exchange", "amq.topic")
    assert_one_line_error(unbound, "returned unroutable")


def test_every_argument_and_option_has_help() -> None:
    """No bare argument in any command's --help."""
    from framework.cli.main import build_parser

    def walk(parser: argparse.ArgumentParser) -> list[str]:
        missing = []
        for action in parser._actions:
            if not action.help:
                missing.append(f"{parser.prog}: {action.dest}")
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    missing += walk(sub)
        return missing

    assert [] == walk(build_parser())


def test_counts_are_said_in_the_right_number() -> None:
    """1 message, 2 messages, 1,000 dead letters."""
    from framework.cli.text import counted

    assert ["1 message", "2 messages", "1,000 dead letters", "0 queues"] == [
        counted(1, "message"),
        counted(2, "message"),
        counted(1000, "dead letter"),
        counted(0, "queue"),
    ]


def test_check_catches_hooks_and_tasks_asking_for_missing_services() -> None:
    """A startup hook or a periodic task asking for what the container lacks fails `check`."""
    hook = run_cli("check", "tests.apps.needy_hooks.main:orchestrator")
    assert_one_line_error(hook, "hook warm_up parameter 'cache' asks for 'cache'")
    task = run_cli("check", "tests.apps.needy_hooks.main:tasks_app")
    assert_one_line_error(task, "Sweeper.run parameter 'broom' asks for 'broom'")
