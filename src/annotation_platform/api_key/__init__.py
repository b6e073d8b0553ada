"""API keys: per-user credentials for scripts, sent as `X-API-Key`."""
