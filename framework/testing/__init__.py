"""Everything for testing consumers: the harness, and the fakes it is built from.

``ConsumerHarness`` runs a consumer class through the real engine with no broker
(see docs/testing.md); the fakes serve tests of the engine itself.
"""

from framework.testing.fakes import (
    Done,
    FakeChannel,
    FakeClock,
    FakePublisher,
    FakeTimer,
    RecordingLog,
    make_message,
)
from framework.testing.harness import ConsumerHarness, DeadLetter
from framework.testing.publisher import (
    OfflineConnection,
    PublishedMessage,
    RecordingPublisher,
)
from framework.testing.tasks import TaskHarness

__all__ = [
    "ConsumerHarness",
    "DeadLetter",
    "Done",
    "FakeChannel",
    "FakeClock",
    "FakePublisher",
    "FakeTimer",
    "OfflineConnection",
    "PublishedMessage",
    "RecordingLog",
    "RecordingPublisher",
    "TaskHarness",
    "make_message",
]
