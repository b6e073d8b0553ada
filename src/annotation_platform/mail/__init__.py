"""Outgoing mail: built in the request, delivered by the worker."""
