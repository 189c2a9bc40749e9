"""Running consumers: container, injection, discovery, orchestrator, settings, logs."""
