"""Pausing and resuming a consumer whose sink is unavailable.

When ``handle`` meets an outage, the breaker opens: consuming pauses, the
bulk is held for the probe, and what was buffered goes back to the broker.
While it is open, held messages go back before the broker's consumer timeout,
and when a probe is due it is the held bulk, or else the next delivery. When
a probe gets through, the breaker closes and consuming resumes.
"""

import datetime
from collections.abc import Callable
from typing import Any

import attrs

from framework.core.abc import Clock
from framework.core.buffer import Buffers
from framework.core.due import DueBulks
from framework.core.message import Message
from framework.core.outage import OutageGuard
from framework.core.verdicts import Judge
from framework.core.watch import Bulk, FlushReason, Pause, Resume


@attrs.define(kw_only=True, eq=False, repr=False)
class Pausing:
    """Opens and closes one consumer's breaker, and says so in the log and to watchers."""

    _outage: OutageGuard
    _judge: Judge
    _buffers: Buffers
    _due: DueBulks
    _clock: Clock
    _wake: Callable[[], None]

    def __repr__(self) -> str:
        return f"<Pausing {self._judge.settings.name} open={self._outage.breaker.is_open}>"

    async def tripped(
        self,
        held: list[Message[Any]],
        error: str,
        delivered_at: float,
        *,
        probe: bool,
        closing: bool,
    ) -> None:
        """The sink is unavailable: pause, hold ``held`` for the probe, give back the rest."""
        outage = self._outage
        if outage.breaker.is_open and not probe:
            await self._judge.give_back(held)  # a bulk that ran beside the one that tripped it
            return
        first = not outage.breaker.is_open
        consuming = first or outage.seeking_probe
        wait = outage.trip(error)
        if closing:
            await self._judge.give_back(held)
        else:
            outage.hold(held, delivered_at)
        if consuming:
            await outage.intake.pause()
        await self._judge.give_back(self._buffers.take_everything())
        extra = {
            "consumer": self._judge.settings.name,
            "error": error,
            "held": len(outage.held),
            "next_probe_in": round(wait, 3),
            "next_probe_at": wall_time_in(wait),
        }
        if first:
            await self._judge.log.warning("sink unavailable: consumer paused", extra=extra)
            self._judge.watchers.paused(
                Pause(self._judge.settings.name, error, wait, len(outage.held))
            )
        else:
            await self._judge.log.info("probe failed: sink still unavailable", extra=extra)

    async def recovered(self) -> None:
        """A probe got through: close the breaker and consume again."""
        probes = self._outage.breaker.probes
        lasted = self._outage.close()
        await self._outage.intake.resume()
        await self._judge.log.warning(
            "sink available again: consumer resumed",
            extra={"consumer": self._judge.settings.name, "paused_seconds": round(lasted, 3)},
        )
        self._judge.watchers.resumed(Resume(self._judge.settings.name, lasted, probes))
        self._wake()

    async def next_probe(self, *, closing: bool, running: bool) -> Bulk | None:
        """While open: give back in time, stop when asked; the bulk to probe with, when due.

        ``running``: bulks are still being handled, so no probe yet.
        """
        outage = self._outage
        if closing:
            await self._judge.give_back(outage.stop() + self._buffers.take_everything())
            return None
        if outage.hold_expired():
            await self._judge.log.info(
                "held messages given back before the broker's consumer timeout",
                extra={"consumer": self._judge.settings.name, "messages": len(outage.held)},
            )
            await self._judge.give_back(outage.release())
        if running or not outage.breaker.probe_due():
            return None
        bulk = await self._probe_bulk()
        if bulk is not None:
            outage.breaker.probes += 1
            for message in bulk.messages:
                message.forget_decision()
        return bulk

    async def _probe_bulk(self) -> Bulk | None:
        """The held bulk; else what came since consuming resumed; else resume to find one."""
        outage = self._outage
        if outage.seeking_probe:
            if not self._buffers.total:
                return None
            self._buffers.force_all(FlushReason.PROBE)
            return self._due.take(closing=False)
        held = [m for m in outage.release() if not m.delivery.channel.is_closed]
        if held:
            waited = self._clock.now() - outage.delivered_at
            return Bulk(self._judge.settings.name, held, FlushReason.PROBE, waited)
        outage.seeking_probe = True  # nothing held: the next delivery is the probe
        await outage.intake.resume()
        return None


def wall_time_in(seconds: float) -> str:
    """The wall-clock time ``seconds`` from now, for log lines people read."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds")
