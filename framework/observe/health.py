"""Is this worker live, is it ready: each component with the reason it is not.

Live means the event loop answers in time; nothing about the broker, so a
broker outage never restarts every pod. Ready means every startup hook
finished, every connection is open, every queue of every consumer has this
worker's consumer registered on the broker, and the worker is not draining.
"""

from collections.abc import Iterable
from typing import Any

import attrs

from framework.observe.loop_lag import LagMonitor
from framework.observe.metrics import is_up


@attrs.frozen
class Component:
    """One thing a probe looks at: ``ok``, and why not."""

    ok: bool
    reason: str | None = None

    def shown(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "failing", "reason": self.reason}


@attrs.frozen
class Health:
    """A probe's answer: ok only when every component is."""

    components: dict[str, Component]

    @property
    def ok(self) -> bool:
        return all(component.ok for component in self.components.values())

    def shown(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.ok else "failing",
            "components": {name: c.shown() for name, c in self.components.items()},
        }


def liveness(monitor: LagMonitor) -> Health:
    lag = monitor.latest
    loop = Component(
        monitor.live,
        None if monitor.live else f"event loop {lag:.1f}s late (limit {monitor.limit:g}s)",
    )
    return Health({"event_loop": loop})


def readiness(
    started: bool,
    draining: bool,
    connections: Iterable[tuple[str, str, Any]],
    runners: Iterable[Any],
) -> Health:
    components = {
        "startup": Component(started, None if started else "starting: hooks or consumers"),
        "draining": Component(not draining, "stopping: draining" if draining else None),
    }
    for name, purpose, connection in connections:
        up = is_up(connection)
        components[f"connection:{name}:{purpose}"] = Component(
            up, None if up else "connection down: reconnecting"
        )
    for runner in runners:
        components[f"breaker:{runner.settings.name}"] = breaker_component(runner.engine)
        consuming = set(runner.subscription.consuming)
        for queue in runner.settings.queues:
            registered = queue in consuming
            components[f"consumer:{runner.settings.name}:{queue}"] = Component(
                registered, None if registered else "no consumer registered on the broker"
            )
    return Health(components)


def breaker_component(engine: Any) -> Component:
    """Paused is alive but not ready: the worker is sound, its sink is not."""
    if not engine.paused:
        return Component(True)
    breaker = engine.outage.breaker
    return Component(
        False,
        f"paused: sink unavailable for {breaker.paused_seconds:.0f}s ({breaker.error}); "
        f"{breaker.probes} probes so far",
    )
