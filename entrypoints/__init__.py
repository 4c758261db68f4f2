"""Entrypoints: the composition root and the three delivery adapters (HTTP, CLI, jobs)."""
