"""User accounts: registration, own profile, administration."""
