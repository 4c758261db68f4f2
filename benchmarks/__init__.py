"""`make bench`: the API measured side by side with a lean reference app."""
