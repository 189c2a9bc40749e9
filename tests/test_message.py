"""A message's own decision."""

import attrs

from framework import Actions
from framework.core.message import Message
from framework.testing import FakeChannel, make_message


def test_last_decision_wins() -> None:
    """Each decision method replaces the previous one."""
    message = make_message({"a": 1}, channel=FakeChannel(), tag=1)
    assert message.decision is None
    message.reject()
    assert Actions.REJECT == message.decision
    message.ack()
    assert Actions.ACK == message.decision
    message.reject(requeue=True)
    assert Actions.REQUEUE == message.decision
    message.requeue()
    assert Actions.REQUEUE == message.decision


def test_repr_shows_identity_not_body() -> None:
    """The repr names queue, id and tag, and leaves the (possibly large) body out."""
    message = make_message({"secret": "x"}, channel=FakeChannel(), tag=7, message_id="m7")
    text = repr(message)
    assert "m7" in text
    assert "tag=7" in text
    assert "secret" not in text


def test_with_body_carries_every_other_field() -> None:
    """The decoded message is the same delivery: each field but the body is carried over."""
    values = {field.name: object() for field in attrs.fields(Message) if field.init}
    original = Message(**values)
    decoded = original.with_body("decoded")
    assert "decoded" == decoded.body
    assert original is not decoded
    for name in values.keys() - {"body"}:
        assert getattr(original, name) is getattr(decoded, name), name
