"""The health a worker writes to a file for its supervisor, every :data:`HEALTH_EVERY` seconds."""

import json
import time
from pathlib import Path

from framework.observe.health import Health

HEALTH_EVERY = 0.5


def health_path(directory: Path, index: int) -> Path:
    return directory / f"health-{index}.json"


def write_health(path: Path, live: Health, ready: Health) -> None:
    """Replace the worker's health file at once (never half written)."""
    state = {"time": time.time(), "live": live.shown(), "ready": ready.shown()}
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(state))
    partial.replace(path)
