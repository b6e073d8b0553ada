"""Demo data for trying the API: `annotation-platform seed --demo`."""
