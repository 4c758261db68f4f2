"""The lean reference app that `make bench` measures the API against."""
