"""Running consumers in a process: orchestrator, runners, supervisor, shutdown."""
