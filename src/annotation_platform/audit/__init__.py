"""The audit trail: recording changes in the transaction that makes them, and reading them back."""
