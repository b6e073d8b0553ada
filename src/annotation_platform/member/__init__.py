"""Project membership: who is in a project, with which role."""
