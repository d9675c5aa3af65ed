"""The collector tuning for bulk reads: set once, never turning the collector off, and
never turning on one that was off."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from storage.bulk import YOUNG_THRESHOLD, tune_collector


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    was, thresholds = gc.isenabled(), gc.get_threshold()
    yield
    gc.set_threshold(*thresholds)
    if was:
        gc.enable()
    else:
        gc.disable()


def test_tuning_makes_collections_rarer_and_leaves_the_collector_on() -> None:
    """After tuning, young collections wait for many more allocations, and the collector
    is still running."""
    gc.enable()
    gc.set_threshold(700, 10, 10)
    tune_collector()
    assert gc.isenabled()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    tune_collector()  # at start-up, or again: the same
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD


def test_a_collector_that_was_off_stays_off() -> None:
    """Tuning never turns on a collector someone turned off."""
    gc.disable()
    tune_collector()
    assert not gc.isenabled()


def test_higher_thresholds_set_by_the_site_are_kept() -> None:
    """A site that chose rarer collections still has them."""
    gc.set_threshold(200_000, 50, 500)
    tune_collector()
    assert gc.get_threshold() == (200_000, 50, 500)
