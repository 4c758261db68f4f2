"""The admin CLI delivery adapter (Typer): ``app users``, ``app tokens``, ``app db``.

Each module holds one command group; ``entrypoints.console`` assembles them with
``serve`` and ``jobs run`` into the ``app`` command.
"""
