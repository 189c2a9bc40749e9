"""Deployment settings from the environment into the container's config."""

import pytest

from framework import ConfigurationError, Container
from framework.config.deployment import DEFAULT_AMQP_URL, load_environment, resolve_deployment


def test_defaults_without_environment() -> None:
    """With no variables set, every setting takes its documented default."""
    container = Container()
    load_environment(container.config, environ={})
    assert DEFAULT_AMQP_URL == container.config.amqp_url()
    assert 60.0 == container.config.flush_interval()
    assert "INFO" == container.config.log_level()
    assert 30.0 == container.config.shutdown_timeout()


def test_environment_is_read() -> None:
    """BULKWORKER_* variables fill the config."""
    container = Container()
    environ = {
        "BULKWORKER_AMQP_URL": "amqp://u:p@rabbit:5672/vh",
        "BULKWORKER_FLUSH_INTERVAL": "2.5",
        "BULKWORKER_LOG_LEVEL": "debug",
        "BULKWORKER_SHUTDOWN_TIMEOUT": "7",
    }
    load_environment(container.config, environ=environ)
    assert "amqp://u:p@rabbit:5672/vh" == container.config.amqp_url()
    assert 2.5 == container.config.flush_interval()
    assert "debug" == container.config.log_level()
    assert 7.0 == container.config.shutdown_timeout()


def test_values_set_in_code_win() -> None:
    """A value set on config before start is kept over the environment."""
    container = Container()
    container.config.amqp_url.from_value("amqp://code/")
    load_environment(container.config, environ={"BULKWORKER_AMQP_URL": "amqp://env/"})
    assert "amqp://code/" == container.config.amqp_url()


@pytest.mark.parametrize("raw", ["0", "-1", "soon"])
def test_invalid_seconds_name_the_variable(raw: str) -> None:
    """A bad number fails with the variable's name and value."""
    with pytest.raises(ConfigurationError, match=f"BULKWORKER_FLUSH_INTERVAL must be .* {raw!r}"):
        load_environment(Container().config, environ={"BULKWORKER_FLUSH_INTERVAL": raw})


def test_a_postgres_dsn_that_is_no_url_is_refused_without_its_password() -> None:
    """BULKWORKER_POSTGRES_DSN must be a postgresql:// URL; the error hides the password."""
    with pytest.raises(ConfigurationError, match="BULKWORKER_POSTGRES_DSN must be a URL") as caught:
        resolve_deployment(environ={"BULKWORKER_POSTGRES_DSN": "mysql://app:s3cret@db/x"})
    assert "s3cret" not in str(caught.value)


def test_the_postgres_dsn_is_kept_out_of_the_settings_repr() -> None:
    """A repr of the deployment settings never shows the database password."""
    settings = resolve_deployment(environ={"BULKWORKER_POSTGRES_DSN": "postgresql://a:s3cret@h/d"})
    assert "postgresql://a:s3cret@h/d" == settings.postgres_dsn
    assert "s3cret" not in repr(settings)
