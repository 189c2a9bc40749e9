"""What a supervisor tells each worker process it starts, in one typed value.

``bulkworker run --workers N`` starts N worker processes with the spawn method.
Each is handed one :class:`WorkerContract`, written once as JSON
(:meth:`WorkerContract.to_json`) as the process's only argument and read back
in the worker (:meth:`WorkerContract.from_json`); nothing else about a worker
travels in environment variables that the command changes. The one variable
the supervisor sets is prometheus-client's own ``PROMETHEUS_MULTIPROC_DIR``,
which that library reads as it is imported; it names the same directory as
:attr:`WorkerContract.run_directory`.
"""

import json
from pathlib import Path

import attrs

from framework.config.deployment import Deployment
from framework.errors import ConfigurationError


@attrs.frozen(kw_only=True)
class WorkerContract:
    """One worker's orders: what to run, which worker it is, and where to report.

    Attributes:
        target: what ``bulkworker run`` was given (a package, a module, or
            ``module:orchestrator``); each worker imports it again.
        container: the ``MODULE:CLASS`` of the container, or None for
            ``framework.Container`` (``--container``, else ``BULKWORKER_CONTAINER``).
        index: this worker's index, ``0`` to ``workers - 1``: its
            ``worker_id`` (periodic tasks run in worker 0 unless ``every_worker``).
        count: how many workers the run has: partitioned consumers share their
            partitions by it (``worker_count``).
        run_directory: the run's directory, where the worker writes its health
            file and prometheus-client its metrics; made and removed by the supervisor.
    """

    target: str
    container: str | None
    index: int
    count: int = 1
    run_directory: str

    def to_json(self) -> str:
        """The contract as the worker process receives it."""
        return json.dumps(attrs.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "WorkerContract":
        """Read what :meth:`to_json` wrote; a contract that does not fit is an error."""
        try:
            return cls(**json.loads(text))
        except (TypeError, ValueError) as error:
            raise ConfigurationError(f"not a worker contract ({error}): {text!r}") from None

    @property
    def health_file(self) -> Path:
        """The file this worker writes its health to, for the supervisor to read."""
        return Path(self.run_directory) / f"health-{self.index}.json"

    def applied_to(self, deployment: Deployment) -> Deployment:
        """The worker's settings: the run's, as this worker, serving no HTTP of its own.

        The supervisor serves ``/metrics`` and ``/health/*`` for every worker,
        and only it starts workers.
        """
        return attrs.evolve(
            deployment,
            worker_id=self.index,
            worker_count=self.count,
            workers=1,
            http_port=None,
        )
