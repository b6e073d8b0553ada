"""Webhooks: signed notifications of a project's events to URLs its managers register (docs/webhooks.md)."""
