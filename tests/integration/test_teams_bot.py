"""The Teams bot's endpoint on the running web server, against a fake Bot Framework on
loopback: who may post to it, and what it learns when the app is installed."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from bot.services.records import Records
from storage.teams_chats import TeamsConversations
from tests.teams import APP_ID, teams_site


async def test_installing_the_app_stores_the_leads_conversation(
    db_url: str, tmp_path: Path
) -> None:
    """When the app is installed for Dana, her 1:1 conversation is stored against her."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "Dana.Cole@council.example")
        assert await site.post(site.install(dana)) == 200
        stored = await site.conversations("DC")
        assert stored["DC"].teams_user_id == dana.id
        assert stored["DC"].service_url == site.connector.url
        assert site.identity.token_requests, "the bot fetched its own token to ask who she is"


async def test_someone_no_plan_names_is_not_stored(db_url: str, tmp_path: Path) -> None:
    """An install by someone whose address no plan has stores nothing."""
    async with teams_site(db_url, tmp_path) as site:
        stranger = site.member("x", "Xavier Stranger", "x.stranger@elsewhere.example")
        assert await site.post(site.install(stranger)) == 200
        assert not any((await site.conversations("DC", "PB", "AW")).values())


async def test_removing_the_app_forgets_the_conversation(db_url: str, tmp_path: Path) -> None:
    """When Dana removes the app, her conversation is forgotten."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        await site.post(site.install(dana))
        removed = site.activity(dana, "installationUpdate", action="remove")
        assert await site.post(removed) == 200
        assert await site.conversations("DC") == {}


async def test_forged_expired_and_misaddressed_tokens_are_refused(
    db_url: str, tmp_path: Path
) -> None:
    """A token signed by an unpublished key, expired, for another bot or another service URL
    (or none), from another tenant, or missing gets 401 and stores nothing."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        install = site.install(dana)
        url = str(install["serviceUrl"])
        now = site.clock()
        assert await site.post(install, forged=True) == 401
        expired = site.identity.sign(audience=APP_ID, service_url=url, now=now - timedelta(hours=2))
        assert await site.post(install, token=expired) == 401
        other_bot = site.identity.sign(audience="another-bot", service_url=url, now=now)
        assert await site.post(install, token=other_bot) == 401
        wrong_issuer = site.identity.sign(
            audience=APP_ID, service_url=url, now=now, issuer="https://evil.example"
        )
        assert await site.post(install, token=wrong_issuer) == 401
        elsewhere = {**install, "serviceUrl": "http://127.0.0.1:9/evil/"}
        assert (
            await site.post(
                elsewhere, token=site.identity.sign(audience=APP_ID, service_url=url, now=now)
            )
            == 401
        )
        other_tenant = {
            **install,
            "conversation": {**install["conversation"], "tenantId": "another-tenant"},
            "channelData": {"tenant": {"id": "another-tenant"}},
        }
        assert await site.post(other_tenant) == 401
        unbound = site.identity.sign(audience=APP_ID, service_url=None, now=now)
        assert await site.post(install, token=unbound) == 401
        assert await site.post(install, token="") == 401
        assert await site.post(install, token="not.a.jwt") == 401
        assert await site.conversations("DC") == {}
        assert site.identity.token_requests == [], "nothing was acted on"
        assert await site.post(install) == 200, "the same activity, properly signed, is taken"


async def test_the_conversation_is_exported_with_her_and_forgotten_with_her(
    db_url: str, tmp_path: Path
) -> None:
    """A subject-access export holds Dana's Teams ids; forgetting her leaves none of them."""
    async with teams_site(db_url, tmp_path) as site:
        dana = site.member("dana", "Dana Cole", "dana.cole@council.example")
        await site.post(site.install(dana))
        records = Records(site.pulse)
        json_path, _ = await records.export_person("DC", output=tmp_path / "out", actor="test")
        person = json.loads(json_path.read_text("utf-8"))["person"]
        assert person["teams_user_id"] == dana.id
        assert person["teams_conversation_id"] == f"a:1{dana.id[3:]}"
        await records.forget_person("DC", reassign_to="PB", actor="test")
        assert await site.conversations("DC") == {}
        async with site.pulse.sessions() as session:
            stored = await TeamsConversations(session).person_for_user(dana.id)
        assert stored is None
