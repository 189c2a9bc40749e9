"""Deployment settings: what a worker is told by code and the environment, parsed once."""
