"""The composition root: everything the commands need, built from `Settings` and a clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.domain.model import Milestone
from bot.domain.status import Status, local_date, milestone_status
from bot.settings import Settings
from digests.content import Digest, build_digest
from storage.db import create_engine, migrate, session_factory
from storage.repositories import PlanRepository, TrackedPlan

Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class MilestoneLine:
    """One row of `pulse status`."""

    milestone: Milestone
    priority: int
    status: Status


class PlanPulse:
    """The running application's parts, for one process."""

    def __init__(self, settings: Settings, *, clock: Clock = system_clock) -> None:
        self.settings = settings
        self.clock = clock
        self.engine: AsyncEngine = create_engine(settings.database_url)
        self.sessions: async_sessionmaker[AsyncSession] = session_factory(self.engine)

    async def migrate(self) -> None:
        await migrate(self.settings.database_url)

    async def close(self) -> None:
        await self.engine.dispose()

    async def tracked(self, plan_key: str) -> TrackedPlan:
        async with self.sessions() as session:
            return await PlanRepository(session).tracked(plan_key)

    def today(self, timezone: str) -> date:
        return local_date(self.clock(), timezone)

    async def statuses(self, plan_key: str, *, as_of: date | None = None) -> list[MilestoneLine]:
        tracked = await self.tracked(plan_key)
        plan = tracked.plan
        day = as_of or self.today(plan.timezone)
        lines = []
        for action in tracked.actions:
            for milestone in action.milestones:
                status = milestone_status(
                    milestone.timescale,
                    tracked.updates.get(milestone.ref, ()),
                    today=day,
                    policy=plan.policy,
                    timezone=plan.timezone,
                )
                lines.append(MilestoneLine(milestone, action.priority, status))
        return lines

    async def digests(
        self, plan_key: str, *, network: str | None = None, as_of: date | None = None
    ) -> list[Digest]:
        """The digest content of each of the plan's networks (or of one)."""
        tracked = await self.tracked(plan_key)
        plan = tracked.plan
        day = as_of or self.today(plan.timezone)
        networks = [tracked.network(network)] if network else list(tracked.networks)
        return [
            build_digest(plan, n, tracked.actions, tracked.updates, as_of=day) for n in networks
        ]
