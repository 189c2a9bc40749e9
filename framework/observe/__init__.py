"""What a worker shows of itself: log, metrics, traces, loop lag, health, HTTP probes."""
