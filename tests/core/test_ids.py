"""Ids are UUIDv7 that sort in the order they were made, one at a time or in bulk."""

from __future__ import annotations

import uuid

from annotation_platform.core.ids import uuid7, uuid7_strings


def test_bulk_ids_are_version_7_unique_and_in_order_with_single_ones() -> None:
    before = uuid7()
    bulk = [uuid.UUID(value) for value in uuid7_strings(10_000)]
    after = uuid7()
    made = [before, *bulk, after]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert {(value.version, value.variant) for value in made} == {(7, uuid.RFC_4122)}


def test_more_ids_than_a_millisecond_counter_holds_roll_over_into_the_next_millisecond() -> None:
    bulk = [uuid.UUID(value) for value in uuid7_strings(3 * 4096)]
    assert bulk == sorted(bulk)
    milliseconds = {value.int >> 80 for value in bulk}
    assert len(milliseconds) >= 3


def test_no_ids_asked_for_none_made() -> None:
    assert uuid7_strings(0) == []
