"""Accounts and authentication: fastapi-users' user manager with our own routes and session tokens."""
