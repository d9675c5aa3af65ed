"""The running bot with Teams on, against Microsoft's side faked on loopback
(tests/fake_bot_connector.py): its web server on a free port, the small plan loaded with
Dana Cole and Priya Bains preferring Teams, and helpers to post activities as Teams would."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bot.app import PlanPulse, Runner
from bot.settings import Settings
from storage.teams_chats import TeamsConversations
from tests.conftest import PLANS, Clock, import_small_plan
from tests.fake_bot_connector import TENANT, FakeBotConnector, FakeIdentity, Member
from tests.postgres import free_port

MONDAY = datetime(2026, 11, 23, 9, 5, tzinfo=UTC)
KEY = "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E"
APP_ID = "3d5e7f90-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
BOT = f"28:{APP_ID}"


@dataclass
class TeamsSite:
    pulse: PlanPulse
    runner: Runner
    clock: Clock
    identity: FakeIdentity
    connector: FakeBotConnector
    base: str

    def member(self, key: str, name: str, email: str) -> Member:
        """Someone Teams knows, by their Teams user id."""
        found = Member(id=f"29:{key}-{secrets.token_hex(4)}", name=name, email=email)
        self.connector.members[found.id] = found
        return found

    def activity(self, member: Member, kind: str, **fields: Any) -> dict[str, Any]:
        """An activity from `member`'s 1:1 chat with the bot, as Teams sends it."""
        return {
            "type": kind,
            "id": "f:" + secrets.token_hex(8),
            "timestamp": self.clock().isoformat(),
            "serviceUrl": self.connector.url,
            "channelId": "msteams",
            "from": {"id": member.id, "name": member.name, "aadObjectId": member.aad_object_id},
            "conversation": {
                "id": f"a:1{member.id[3:]}",
                "conversationType": "personal",
                "tenantId": TENANT,
            },
            "recipient": {"id": BOT, "name": "Plan Pulse"},
            "channelData": {"tenant": {"id": TENANT}},
            **fields,
        }

    def install(self, member: Member) -> dict[str, Any]:
        return self.activity(member, "installationUpdate", action="add")

    async def post(
        self, activity: Mapping[str, Any], *, token: str | None = None, forged: bool = False
    ) -> int:
        """Post an activity to the bot's endpoint with a Bot Framework token; the status."""
        if token is None:
            token = self.identity.sign(
                audience=APP_ID,
                service_url=str(activity["serviceUrl"]),
                now=self.clock(),
                forged=forged,
            )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.base}/api/messages", json=activity, headers=headers) as response,
        ):
            await response.read()
            return response.status

    async def conversations(self, *keys: str) -> dict[str, Any]:
        async with self.pulse.sessions() as session:
            return dict(await TeamsConversations(session).for_people(list(keys)))


def teams_people(folder: Path) -> Path:
    """The small plan's people, Dana Cole and Priya Bains preferring Teams."""
    text = (PLANS / "small-people.csv").read_text(encoding="utf-8")
    text = text.replace(",,slack,", ",,teams,").replace(
        "Priya Bains,priya.bains@council.example,,email",
        "Priya Bains,priya.bains@council.example,,teams",
    )
    path = folder / "people-teams.csv"
    path.write_text(text, encoding="utf-8")
    return path


@asynccontextmanager
async def teams_site(
    db_url: str,
    data: Path,
    *,
    extra: Mapping[str, Any] | None = None,
    limits: bool = False,
    people: Path | None = None,
) -> AsyncIterator[TeamsSite]:
    """The site with the small plan, its people from `people` (else `teams_people`)."""
    identity = FakeIdentity()
    await identity.start()
    connector = FakeBotConnector(identity, enforce_limits=limits)
    await connector.start()
    port = free_port()
    clock = Clock(MONDAY)
    ca = Path(identity.ca_file)
    settings = Settings(
        _env_file=None,
        DATABASE_URL=db_url,
        PULSE_DATA_DIR=data,
        PULSE_SECRET_KEY=KEY,
        HTTP_PORT=port,
        PULSE_BASE_URL=f"http://127.0.0.1:{port}",
        TEAMS_APP_ID=APP_ID,
        TEAMS_APP_PASSWORD=identity.secret,
        TEAMS_TENANT_ID=TENANT,
        TEAMS_AUTHORITY=identity.authority,
        TEAMS_OPENID_METADATA_URL=identity.metadata_url,
        TEAMS_CA_FILE=ca,
        **dict(extra or {}),
    )
    pulse = PlanPulse(settings, clock=clock)
    runner: Runner | None = None
    try:
        await pulse.migrate()
        await import_small_plan(
            pulse.sessions, now=clock(), people_path=people or teams_people(data)
        )
        runner = Runner(pulse)
        await runner.web.start()
        yield TeamsSite(
            pulse, runner, clock, identity, connector, f"http://127.0.0.1:{runner.web.port}"
        )
    finally:
        if runner is not None:
            await runner.web.stop()
            if runner.teams is not None:
                await runner.teams.close()
        await pulse.close()
        await connector.stop()
        await identity.stop()
