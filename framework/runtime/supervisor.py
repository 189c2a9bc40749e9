"""``bulkworker run --workers N``: one supervisor process, N worker processes, no process manager.

Each worker is started with the spawn method and builds its own container and
connections from the same target; it knows its index from
``BULKWORKER_WORKER_ID``. The supervisor forwards SIGTERM and SIGINT (the
second one makes the workers end at once), restarts a worker that dies, with a
pause doubling from 1 s to 30 s, and gives up with exit status 1 after
:data:`CRASH_LIMIT` crashes within :data:`CRASH_WINDOW` seconds. A worker that
exits before it was ever ready (bad configuration, an import error, a broker
it cannot reach) is not restarted: the supervisor stops the others and exits 1.

Workers write their health to a file every half second; with HTTP on, the
supervisor serves one ``/metrics`` aggregating every worker
(prometheus-client's multiprocess mode, in a directory made fresh for the run
and removed at its end) and ``/health/*`` that is ready only when every worker is.
"""

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import attrs
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess
from prometheus_client.multiprocess import MultiProcessCollector

from framework.config.deployment import Deployment
from framework.observe.health import Component, Health
from framework.observe.health_file import health_path
from framework.observe.http import ProbeServer
from framework.runtime.shutdown import ABANDON_GRACE, ShutdownBudget

CRASH_LIMIT = 5
CRASH_WINDOW = 60.0
FIRST_PAUSE = 1.0
LONGEST_PAUSE = 30.0
# A health file older than this means the worker's loop is not answering.
STALE_AFTER = 3.0
POLL_EVERY = 0.1
# After its stop, a worker closes its event loop (up to two abandon graces) and
# its interpreter exits; on a loaded machine that takes a moment too.
EXIT_GRACE = 2 * ABANDON_GRACE + 2.0

WorkerMain = Callable[[int], None]


@attrs.define
class Worker:
    """One worker process and what the supervisor knows of it."""

    index: int
    process: BaseProcess | None = None
    ever_ready: bool = False
    restart_at: float | None = None
    crashes: list[float] = attrs.field(factory=list)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()


class Supervisor:
    """Starts, watches and stops the worker processes of one ``bulkworker run``."""

    def __init__(self, settings: Deployment, worker_main: WorkerMain) -> None:
        self.settings = settings
        self.count = settings.workers
        self._worker_main = worker_main
        self.directory = Path(tempfile.mkdtemp(prefix="bulkworker-"))
        self.workers = [Worker(index) for index in range(self.count)]
        self.signals = 0
        self.failure: str | None = None
        self._context = multiprocessing.get_context("spawn")
        self._wake = asyncio.Event()
        self.restarts = 0
        self.probes: ProbeServer | None = None
        # Made here, in the supervisor alone: a counter made at import would also
        # exist, as a file, in every worker, and be reported twice.
        self.registry = CollectorRegistry()
        self._restarts = Counter(
            "bulkworker_worker_restarts",
            "Worker processes the supervisor restarted.",
            registry=self.registry,
        )

    def __repr__(self) -> str:
        alive = sum(worker.alive for worker in self.workers)
        return f"<Supervisor workers={self.count} alive={alive} restarts={self.restarts}>"

    def run(self) -> int:
        """Supervise until stopped; the exit status for the command."""
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(self.directory)
        try:
            return asyncio.run(self._supervise())
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    async def _supervise(self) -> int:
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self._on_signal, number)
        probes = await self._start_probes()
        try:
            for worker in self.workers:
                self._start(worker)
            while not self._done():
                self._look_after_workers(loop.time())
                await self._nap()
            await self._stop_all()
        finally:
            if probes is not None:
                await probes.stop()
        if self.failure is not None:
            print(f"bulkworker: error: {self.failure}", file=sys.stderr)
            return 1
        return 0

    def _done(self) -> bool:
        return self.signals > 0 or self.failure is not None

    async def _nap(self) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), POLL_EVERY)

    def _on_signal(self, number: int) -> None:
        self.signals += 1
        for worker in self.workers:
            if worker.alive and worker.process is not None and worker.process.pid:
                os.kill(worker.process.pid, number)
        self._wake.set()

    def _start(self, worker: Worker) -> None:
        process = self._context.Process(
            target=self._worker_main,
            args=(worker.index,),
            name=f"bulkworker-worker-{worker.index}",
        )
        process.start()
        worker.process = process
        worker.restart_at = None

    def _look_after_workers(self, now: float) -> None:
        for worker in self.workers:
            self._note_readiness(worker)
            if worker.process is not None and not worker.alive:
                self._on_exit(worker, now)
            elif worker.restart_at is not None and now >= worker.restart_at:
                self._start(worker)
                self.restarts += 1
                self._restarts.inc()

    def _note_readiness(self, worker: Worker) -> None:
        if (
            not worker.ever_ready
            and self._worker_health(worker).get("ready", {}).get("status") == "ok"
        ):
            worker.ever_ready = True

    def _on_exit(self, worker: Worker, now: float) -> None:
        assert worker.process is not None
        code, pid = worker.process.exitcode, worker.process.pid
        worker.process = None
        forget_worker_metrics(pid, self.directory)
        if not worker.ever_ready:
            self.failure = (
                f"worker {worker.index} exited with status {code} before it was ever ready: "
                "not restarting (its own output says why)"
            )
            return
        worker.crashes = [t for t in worker.crashes if now - t < CRASH_WINDOW] + [now]
        if len(worker.crashes) >= CRASH_LIMIT:
            self.failure = (
                f"worker {worker.index} died {len(worker.crashes)} times within "
                f"{CRASH_WINDOW:g}s (last status {code}): giving up"
            )
            return
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** (len(worker.crashes) - 1))
        worker.restart_at = now + pause
        print(
            f"bulkworker: warning: worker {worker.index} exited with status {code}; "
            f"restarting it in {pause:g}s",
            file=sys.stderr,
        )

    @property
    def stop_bound(self) -> float:
        """The longest a worker may take to stop before it is killed: its shutdown budget."""
        return ShutdownBudget(self.settings.shutdown_timeout).total + EXIT_GRACE

    async def _stop_all(self) -> None:
        """Ask each worker to stop; past :attr:`stop_bound`, kill those still running."""
        for worker in self.workers:
            if worker.alive and self.signals == 0 and worker.process is not None:
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_bound
        while time.monotonic() < deadline:
            if not any(worker.alive for worker in self.workers):
                break
            await asyncio.sleep(POLL_EVERY)
        for worker in self.workers:
            self._kill_if_running(worker)
            if worker.process is not None:
                forget_worker_metrics(worker.process.pid, self.directory)

    def _kill_if_running(self, worker: Worker) -> None:
        if worker.process is None or not worker.alive:
            return
        print(
            f"bulkworker: warning: worker {worker.index} did not stop within "
            f"{self.stop_bound:g}s: killed (the broker requeues what it held)",
            file=sys.stderr,
        )
        worker.process.kill()
        worker.process.join(EXIT_GRACE)

    def _worker_health(self, worker: Worker) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(
                health_path(self.directory, worker.index).read_text()
            )
        except (OSError, ValueError):
            return {}
        return state

    def health(self, which: str) -> Health:
        """``live`` or ``ready``: each worker's own answer, stale or missing counted as failing."""
        components = {}
        for worker in self.workers:
            state = self._worker_health(worker)
            fresh = bool(state) and time.time() - state["time"] < STALE_AFTER
            if not worker.alive:
                components[f"worker:{worker.index}"] = Component(False, "not running")
            elif not fresh:
                components[f"worker:{worker.index}"] = Component(False, "no recent health report")
            else:
                shown = state[which]
                failing = [
                    f"{name}: {part['reason']}"
                    for name, part in shown["components"].items()
                    if part["status"] != "ok"
                ]
                components[f"worker:{worker.index}"] = Component(
                    shown["status"] == "ok", "; ".join(failing) or None
                )
        return Health(components)

    async def _start_probes(self) -> ProbeServer | None:
        if self.settings.http_port is None:
            return None
        probes = ProbeServer(
            self.settings.http_host,
            self.settings.http_port,
            lambda: self.health("live"),
            lambda: self.health("ready"),
            lambda: aggregated_metrics(self.directory, self.registry),
        )
        await probes.start()
        self.probes = probes
        return probes


def aggregated_metrics(directory: Path, own: CollectorRegistry) -> bytes:
    """Every worker's metrics summed (gauges by their mode), and the supervisor's ``own``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    return generate_latest(registry) + generate_latest(own)


def forget_worker_metrics(pid: int | None, directory: Path) -> None:
    """A dead worker's live gauges no longer count (its counters still do)."""
    if pid is not None:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
