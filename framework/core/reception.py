"""A delivery taken in: tracked, told, decoded and buffered, or refused.

The transport hands each delivery over with its body still the raw bytes.
It enters the settlement ledger before anything else runs, so no
multiple-ack can cover it before it is decided; then the watchers hear of
it, and the bulk gets a new message carrying the decoded body (a message is
never changed in place, so what a watcher was told stays as it was).
Whatever decoding or ``group_by`` raises dead-letters that message alone.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from framework.core.buffer import Buffers
from framework.core.decoding import Decoder, body_decoder, undecodable
from framework.core.handler_call import is_exit_request
from framework.core.handling import Handling
from framework.core.message import Message
from framework.core.outage import OutageGuard
from framework.core.verdicts import Judge
from framework.errors import DecodeError


@attrs.define(kw_only=True, eq=False, repr=False)
class Reception:
    """Takes one consumer's deliveries into its buffers, or refuses them."""

    _judge: Judge
    _outage: OutageGuard
    _handling: Handling
    _buffers: Buffers
    _wake: Callable[[], None]
    # From raw bytes to ``Message.body``: the consumer's decoder, content type and model.
    decode: Decoder = attrs.field()

    @decode.default
    def _consumers_decoder(self) -> Decoder:
        settings = self._judge.settings
        return body_decoder(settings.decoder, settings.model, settings.model_converter())

    def __repr__(self) -> str:
        return f"<Reception {self._judge.settings.name} buffered={self._buffers.total}>"

    def receive(self, message: Message[Any]) -> Awaitable[None] | None:
        """Record a delivery, decode it and take it in, or return the refusal to await.

        The accepting path never awaits, so the transport keeps the arrival order.
        """
        judge = self._judge
        judge.settler.ledger.track(message.delivery)
        if judge.stream is not None and not judge.stream.delivered(message):
            return judge.credit([message])
        judge.watchers.received(message)
        if not self._outage.taking_deliveries:
            return judge.give_back([message])  # sent before the pause took effect
        try:
            body = self.decode(message.raw, message.content_type)
        except BaseException as error:  # any type: RecursionError, even a decoder's SystemExit
            if is_exit_request(error):
                self._handling.exit_requests.append(error)
            return self.refuse(message, undecodable(error))
        return self._take_in(message.with_body(body))

    def _take_in(self, message: Message[Any]) -> Awaitable[None] | None:
        buffers = self._buffers
        if buffers.key_of is None:
            buffers.add(message)
        else:
            try:
                key = buffers.key_of(message)
                hash(key)
            except Exception as error:  # the user's group_by: this message alone is refused
                reason = f"group_by raised {type(error).__name__}: {error}"
                return self.refuse(message, DecodeError(reason, reason="ungroupable"))
            buffers.add(message, key)
            if buffers.total + self._judge.mover.pending >= self._judge.settings.prefetch:
                self._wake()  # every prefetch slot is taken: a bulk must go
        if self._outage.seeking_probe:
            self._wake()  # the probe's message has come
        return None

    async def refuse(self, message: Message[Any], error: DecodeError) -> None:
        """Dead-letter a message that cannot be decoded: it never reaches ``handle``."""
        await self._judge.refuse(message, error)
        self._handling.pass_exit_requests()
