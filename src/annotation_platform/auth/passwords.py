"""The password policy: long enough, not the account's own email or name, not a well-known password."""

from __future__ import annotations

from importlib import resources

MAX_PASSWORD_LENGTH = 256


def _load_common_passwords() -> frozenset[str]:
    text = resources.files("annotation_platform.auth").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip())


COMMON_PASSWORDS = _load_common_passwords()


def password_problems(password: str, *, email: str, username: str | None, min_length: int) -> list[str]:
    """Everything wrong with a password, as sentences a user can act on (empty when it is acceptable)."""
    problems = []
    if len(password) < min_length:
        problems.append(f"Password must have at least {min_length} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"Password must have at most {MAX_PASSWORD_LENGTH} characters.")
    lowered = password.lower()
    local_part = email.split("@", 1)[0].lower()
    if lowered == email.lower() or (len(local_part) >= 4 and local_part in lowered):
        problems.append("Password must not contain your email address.")
    if username and len(username) >= 4 and username.lower() in lowered:
        problems.append("Password must not contain your username.")
    if lowered in COMMON_PASSWORDS or len(set(password)) < 4:
        problems.append("Password is too common or too simple; choose a less predictable one.")
    return problems
