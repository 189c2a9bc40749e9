"""Consumer declarations: defaults, inheritance, and errors that name class and attribute."""

from typing import Any

import pytest
from dependency_injector.wiring import Provide

from framework import Actions, BulkConsumer, ConsumerDefinitionError, ConsumerSettings, Message


class Items(BulkConsumer):
    queues = ["items"]

    async def handle(self, messages: list[Message[Any]]) -> None:
        pass


def test_defaults_are_filled_in() -> None:
    """An explicit minimal consumer gets every documented default."""
    settings = ConsumerSettings.of(Items, default_flush_interval=60.0)
    assert ("items",) == settings.queues
    assert 1 == settings.bulk_size
    assert 2 == settings.prefetch
    assert 60.0 == settings.flush_interval
    assert Actions.ACK == settings.on_success
    assert Actions.REQUEUE == settings.on_exception
    assert settings.declare is True
    assert {} == settings.queue_arguments


def test_flush_interval_of_class_wins_over_default() -> None:
    """A class's flush_interval beats the environment's default."""

    class Quick(Items):
        flush_interval = 0.5

    assert 0.5 == ConsumerSettings.of(Quick, default_flush_interval=60.0).flush_interval


def test_settings_are_inherited_from_a_base() -> None:
    """A base consumer sets defaults that its subclasses read through the MRO."""

    class Base(BulkConsumer, abstract=True):
        bulk_size = 50
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            pass

    class Orders(Base):
        queues = ["orders"]

    settings = ConsumerSettings.of(Orders)
    assert 50 == settings.bulk_size
    assert 100 == settings.prefetch
    assert Actions.REJECT == settings.on_exception


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"queues": []}, "Bad.queues is required"),
        ({"queues": "items"}, "Bad.queues must be a list"),
        ({"queues": ["a", "a"]}, "Bad.queues names a queue twice"),
        ({"queues": ["items"], "bulk_size": 0}, "Bad.bulk_size must be a whole number"),
        ({"queues": ["items"], "bulk_size": True}, "Bad.bulk_size must be a whole number"),
        ({"queues": ["items"], "bulk_size": 10, "prefetch": 5}, "Bad.prefetch allows a bulk"),
        ({"queues": ["items"], "flush_interval": 0}, "Bad.flush_interval must be"),
        ({"queues": ["items"], "on_success": "ack"}, "Bad.on_success must be one of"),
        ({"queues": ["items"], "declare": "yes"}, "Bad.declare must be True or False"),
        ({"queues": ["items"], "queue_arguments": [1]}, "Bad.queue_arguments must be a dict"),
        (
            {"queues": ["items"], "bulksize": 10},
            "Bad.bulksize is not a consumer setting (did you mean 'bulk_size'?",
        ),
    ],
)
def test_wrong_declarations_fail_at_class_definition(
    attributes: dict[str, Any], expected: str
) -> None:
    """Each wrong setting fails when the class is defined, naming class and attribute."""

    async def handle(self: Any, messages: list[Message[Any]]) -> None:
        pass

    with pytest.raises(ConsumerDefinitionError) as caught:
        type("Bad", (BulkConsumer,), {**attributes, "handle": handle})
    assert expected in str(caught.value)


def test_sync_handle_is_refused() -> None:
    """A handle that is not a coroutine fails with a hint to write async def."""
    with pytest.raises(ConsumerDefinitionError, match=r"Sync\.handle must be a coroutine"):

        class Sync(BulkConsumer):
            queues = ["items"]

            def handle(self, messages: list[Message[Any]]) -> None:  # type: ignore[override]
                pass


def test_quorum_queue_caps_default_prefetch_and_refuses_more() -> None:
    """Quorum queues accept prefetch up to 2000: the default is capped, an explicit excess fails."""

    class Big(Items):
        bulk_size = 1500
        queue_arguments = {"x-queue-type": "quorum"}

    assert 2000 == ConsumerSettings.of(Big).prefetch
    with pytest.raises(ConsumerDefinitionError, match=r"Bigger\.prefetch is 3000, above the 2000"):

        class Bigger(Big):
            prefetch = 3000


def test_abstract_base_without_queues_is_allowed() -> None:
    """A base declared abstract needs no queues; a TypeError is still raised for wrong types."""

    class Base(BulkConsumer, abstract=True):
        bulk_size = 10

    assert 10 == Base.bulk_size
    with pytest.raises(ConsumerDefinitionError, match=r"Broken\.bulk_size"):

        class Broken(BulkConsumer, abstract=True):
            bulk_size = -1


def test_helpers_constants_and_markers_are_not_settings() -> None:
    """Methods, properties, UPPER_CASE constants, private names and DI markers are allowed."""

    class Rich(Items):
        TABLE = "items"
        _cache: dict[str, int] = {}
        store = Provide["store"]

        @property
        def label(self) -> str:
            return self.TABLE

        def helper(self) -> int:
            return 1

    assert "items" == Rich.TABLE


def test_definition_error_is_a_type_error() -> None:
    """ConsumerDefinitionError can be caught as the built-in it resembles."""
    assert issubclass(ConsumerDefinitionError, TypeError)
