"""Use cases: the only home of business rules, shared by every entrypoint."""
