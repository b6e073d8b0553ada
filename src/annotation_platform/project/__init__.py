"""Projects, and the permission table every project-scoped resource is checked against."""
