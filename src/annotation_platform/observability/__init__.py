"""Logs, metrics and error tracking: what the people who run the service see of it."""
