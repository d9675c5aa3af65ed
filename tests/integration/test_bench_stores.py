"""The benchmarks' stores on both databases: the digest bench's national store loads and reads
back, and a bench run on a PostgreSQL server gets an empty database of its own."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from bot.domain.errors import PlanNotFound
from tests.conftest import REPO, running_pulse
from tests.postgres import PostgresServer

sys.path.insert(0, str(REPO / "bench"))
from digest_bench import AS_OF, NOW, build_store  # benchmarks import each other as scripts
from sample_plans import fresh_database


async def test_the_digest_bench_store_loads_and_every_network_digest_reads_it(
    db_url: str, tmp_path: Path
) -> None:
    """The digest bench's store is written on SQLite and PostgreSQL, and a digest per network
    reads it back."""
    async with running_pulse(db_url, tmp_path, lambda: NOW) as pulse:
        await build_store(db_url, milestones=50, updates=200, networks=3)
        digests = await pulse.digests("national", as_of=AS_OF)
        tracked = await pulse.tracked("national")
    assert len(digests) == 3
    assert tracked.plan.title == "National plan"
    assert len([m for a in tracked.actions for m in a.milestones]) == 50


async def test_each_bench_run_on_a_postgres_server_gets_an_empty_database(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """A plan written in one run's database is not in the next run's, and each is dropped
    after its run."""
    server_url = postgres_server.url("postgres")
    async with (
        fresh_database(server_url, tmp_path / "unused.db") as first,
        running_pulse(first, tmp_path, lambda: NOW) as pulse,
    ):
        await build_store(first, milestones=5, updates=10, networks=2)
        assert len(await pulse.digests("national", as_of=AS_OF)) == 2
    async with (
        fresh_database(server_url, tmp_path / "unused.db") as second,
        running_pulse(second, tmp_path, lambda: NOW) as pulse,
    ):
        assert second != first
        with pytest.raises(PlanNotFound):
            await pulse.tracked("national")
    connection = await asyncpg.connect(
        host="127.0.0.1", port=postgres_server.port, user=postgres_server.user
    )
    try:
        names = {
            row["datname"] for row in await connection.fetch("SELECT datname FROM pg_database")
        }
    finally:
        await connection.close()
    assert {make_url(first).database, make_url(second).database}.isdisjoint(names)
