"""The key ring behind data encrypted at rest."""

from __future__ import annotations

import pytest

from annotation_platform.core.crypto import DecryptionError, KeyRing, KeyRingError, generate_key_entry


def test_a_value_round_trips_and_is_not_stored_in_clear() -> None:
    ring = KeyRing.parse(generate_key_entry("k1"))

    token = ring.encrypt_text("Ada Lovelace <ada@example.org>")

    assert token.startswith("enc:v1:k1:")
    assert "Ada" not in token
    assert ring.decrypt_text(token) == "Ada Lovelace <ada@example.org>"
    assert ring.encrypt_text("same") != ring.encrypt_text("same"), "a fresh nonce every time"


def test_a_new_key_encrypts_while_old_keys_still_decrypt() -> None:
    old = generate_key_entry("old")
    before = KeyRing.parse(old).encrypt_text("kept")
    rotated = KeyRing.parse(f"{generate_key_entry('new')},{old}")

    assert rotated.decrypt_text(before) == "kept"
    assert rotated.needs_rotation(before)
    after = rotated.encrypt_text("kept")
    assert after.startswith("enc:v1:new:")
    assert not rotated.needs_rotation(after)


def test_a_dropped_key_a_wrong_context_or_a_changed_byte_do_not_decrypt() -> None:
    ring = KeyRing.parse(generate_key_entry("k1"))
    token = ring.encrypt_text("secret", context=b"webhooks.secret:1")

    with pytest.raises(DecryptionError, match="no longer holds"):
        KeyRing.parse(generate_key_entry("k2")).decrypt_text(token)
    with pytest.raises(DecryptionError):
        ring.decrypt_text(token, context=b"webhooks.secret:2")
    tampered = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    with pytest.raises(DecryptionError):
        ring.decrypt_text(tampered, context=b"webhooks.secret:1")
    with pytest.raises(DecryptionError, match="not encrypted"):
        ring.decrypt_text("plain text")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no key"),
        ("k1", "not `id:key`"),
        ("change-me", "keys generate"),
        ("bad id:AAAA", "not `id:key`"),
        ("k1:AAAA", "not 32"),
        ("k1:%%%", "not base64"),
    ],
)
def test_a_broken_key_ring_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(KeyRingError, match=message):
        KeyRing.parse(text)


def test_a_repeated_key_id_is_refused() -> None:
    entry = generate_key_entry("k1")
    with pytest.raises(KeyRingError, match="repeats"):
        KeyRing.parse(f"{entry},{entry}")
