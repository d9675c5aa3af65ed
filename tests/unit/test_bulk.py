"""The collector pause around bulk reads: nested and overlapping blocks resume the cyclic
collector once, at the end of the last, and never turn on one that was off."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from storage.bulk import collector_paused


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def test_the_collector_is_paused_inside_and_resumed_after() -> None:
    gc.enable()
    with collector_paused():
        assert not gc.isenabled()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer block is still open
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_it_is_resumed_after_an_error() -> None:
    gc.enable()
    with pytest.raises(ValueError, match="boom"), collector_paused():
        raise ValueError("boom")
    assert gc.isenabled()


async def test_overlapping_tasks_resume_it_when_the_last_ends() -> None:
    gc.enable()
    first_in, second_in, first_out = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: list[bool] = []

    async def first() -> None:
        with collector_paused():
            first_in.set()
            await second_in.wait()
        first_out.set()

    async def second() -> None:
        await first_in.wait()
        with collector_paused():
            second_in.set()
            await first_out.wait()
            seen.append(gc.isenabled())  # the first has ended; this one has not

    await asyncio.gather(first(), second())
    assert seen == [False]
    assert gc.isenabled()
