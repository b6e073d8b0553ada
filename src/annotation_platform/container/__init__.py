"""Containers: the sets of items inside a project (a chat room, a document collection)."""
