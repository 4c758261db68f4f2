"""The admin CLI delivery adapter (Typer)."""
