"""`--container` names a container class, or a function that builds the container."""

import pytest

from framework.cli.running import load_container
from framework.errors import DiscoveryError
from tests.apps.container_factory import ShopContainer
from tests.test_cli import run_cli


def test_a_class_is_instantiated() -> None:
    """MODULE:CLASS gives a fresh instance of that container class."""
    container = load_container("tests.apps.container_factory:ShopContainer")
    assert ShopContainer is container.declarative_parent


def test_a_function_is_called_and_its_options_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """MODULE:FUNCTION gives what the function returns, with the options it filled."""
    monkeypatch.setenv("SHOP_NAME", "the big shop")
    container = load_container("tests.apps.container_factory:create_container")
    assert ShopContainer is container.declarative_parent
    assert "the big shop" == container.shop_name()


def test_the_environment_names_a_function_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """$BULKWORKER_CONTAINER takes the same forms."""
    monkeypatch.setenv("BULKWORKER_CONTAINER", "tests.apps.container_factory:create_container")
    monkeypatch.delenv("SHOP_NAME", raising=False)
    assert "corner shop" == load_container(None).shop_name()


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("tests.apps.container_factory:not_a_container", "returned str, not a dependency"),
        ("tests.apps.container_factory:providers", "neither a dependency-injector Decl"),
        ("tests.apps.container_factory:missing", "neither a dependency-injector"),
        ("tests.apps.container_factory", "takes MODULE:CLASS or MODULE:FUNCTION"),
    ],
)
def test_anything_else_is_refused_with_what_it_takes(spec: str, error: str) -> None:
    """A function returning something else, a module, a missing name: each says why."""
    with pytest.raises(DiscoveryError, match=error):
        load_container(spec)


def test_the_command_accepts_a_function() -> None:
    """`bulkworker list PACKAGE --container MODULE:FUNCTION` runs with that container."""
    result = run_cli(
        "list",
        "tests.apps.envconsumer",
        "--container",
        "tests.apps.container_factory:create_container",
    )
    assert 0 == result.returncode, result.stderr
    assert "EnvConsumer" in result.stdout


def test_the_help_says_a_function_may_build_the_container() -> None:
    """`run --help` names both forms."""
    result = run_cli("run", "--help")
    assert "a function returning a container (MODULE:create_container)" in " ".join(
        result.stdout.split()
    )
