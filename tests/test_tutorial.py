"""The tutorial, done as a reader would: its files in a new project, its commands run there."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.private_broker import PrivateBroker
from tests.test_cli import kill_if_running

ROOT = Path(__file__).resolve().parent.parent
TUTORIAL = ROOT / "docs" / "getting-started.md"
TITLED = re.compile(r'^```\w+ title="([^"]+)"\n(.*?)^```', re.MULTILINE | re.DOTALL)
COMMAND = {
    "bulkworker": [sys.executable, "-m", "framework.cli"],
    "pytest": [str(Path(sys.executable).parent / "pytest")],
}


def project(directory: Path) -> dict[str, str]:
    """The reader's project: each file the tutorial shows, and the empty __init__.py it asks for."""
    files = dict(TITLED.findall(TUTORIAL.read_text()))
    files["shop/__init__.py"] = ""
    for name, text in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text)
    return files


def commands() -> list[list[str]]:
    text = TUTORIAL.read_text()
    lines = [
        line.split("#")[0].split()
        for block in re.findall(r"^```bash\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        for line in block.splitlines()
    ]
    return [line for line in lines if line and line[0] in COMMAND]


def run(directory: Path, line: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND[line[0]], *line[1:]],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_tutorial_project_runs_end_to_end(
    private_broker: PrivateBroker, tmp_path: Path
) -> None:
    """list, run, publish, dlq show and pytest, each as the tutorial writes it, succeed."""
    files = project(tmp_path)
    assert {"shop/consumers.py", "orders.jsonl", "pyproject.toml", "tests/test_orders.py"} <= set(
        files
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTEST_", "BULKWORKER_"))
    }
    env["BULKWORKER_AMQP_URL"] = private_broker.url
    env["BULKWORKER_LOG_FORMAT"] = "json"
    steps = commands()
    assert ["list", "run", "publish", "show", ""] == [
        line[2] if line[0] == "bulkworker" and line[1] == "dlq" else (line[1:2] or [""])[0]
        for line in steps
    ]
    listed = run(tmp_path, steps[0], env)
    assert 0 == listed.returncode, listed.stderr
    assert "OrdersConsumer" in listed.stdout
    worker = subprocess.Popen(
        [*COMMAND["bulkworker"], *steps[1][1:]],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        for line in worker.stdout:
            if b"consumer started" in line:
                break
        published = run(tmp_path, steps[2], env)
        assert 0 == published.returncode, published.stderr
        for line in worker.stdout:
            if b"message dead-lettered" in line:
                break
        shown = run(tmp_path, steps[3], env)
        worker.send_signal(signal.SIGTERM)
        _, errors = worker.communicate(timeout=30)
    finally:
        kill_if_running(worker)
    assert 0 == worker.returncode, errors
    assert "published 3 messages to 'orders', each confirmed" in published.stdout
    [row] = [line.split() for line in shown.stdout.splitlines() if "rejected" in line]
    assert '{"id": 2, "quantity": 0}' in shown.stdout
    assert "rejected" == row[1]
    tested = run(tmp_path, steps[4], env)
    assert 0 == tested.returncode, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout
