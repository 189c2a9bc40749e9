"""What a supervisor tells a worker: one typed value, written once as JSON."""

from pathlib import Path

import pytest

from framework.config.contract import WorkerContract
from framework.config.deployment import resolve_deployment
from framework.errors import ConfigurationError


def contract() -> WorkerContract:
    return WorkerContract(
        target="consumers", container="app.wiring:AppContainer", index=2, run_directory="/tmp/run"
    )


def test_the_contract_reads_back_as_written() -> None:
    """The JSON a worker receives gives back the very contract the supervisor made."""
    assert contract() == WorkerContract.from_json(contract().to_json())


def test_a_worker_runs_as_its_index_without_http_of_its_own() -> None:
    """Applied to the run's settings: worker_id is the index, one worker, no HTTP port."""
    run = resolve_deployment({}, {"BULKWORKER_WORKERS": "4", "BULKWORKER_HTTP_PORT": "9000"})
    worker = contract().applied_to(run)
    assert (2, 1, None) == (worker.worker_id, worker.workers, worker.http_port)
    assert run.amqp_url == worker.amqp_url


def test_the_health_file_is_in_the_run_directory() -> None:
    """Each worker writes its health to a file of its own in the run's directory."""
    assert Path("/tmp/run/health-2.json") == contract().health_file


def test_a_contract_that_does_not_fit_is_a_clear_error() -> None:
    """A missing field is a ConfigurationError quoting what was received."""
    with pytest.raises(ConfigurationError, match="not a worker contract"):
        WorkerContract.from_json('{"target": "consumers"}')


def test_the_container_is_a_deployment_setting() -> None:
    """BULKWORKER_CONTAINER is read with the other settings and checked as MODULE:CLASS."""
    given = resolve_deployment({}, {"BULKWORKER_CONTAINER": "app.wiring:AppContainer"})
    assert "app.wiring:AppContainer" == given.container
    with pytest.raises(ConfigurationError, match="BULKWORKER_CONTAINER must be MODULE:CLASS"):
        resolve_deployment({}, {"BULKWORKER_CONTAINER": "app.wiring"})
