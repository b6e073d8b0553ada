"""Annotations: one label on one item by one user, versioned for optimistic concurrency."""
