"""The HTTP delivery adapter (FastAPI)."""
