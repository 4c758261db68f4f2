"""The scheduled job runner delivery adapter (APScheduler)."""
