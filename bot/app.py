"""The composition root: everything the commands need, built from `Settings` and a clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from bot.clock import Clock, system_clock
from bot.domain.cycles import PromptItem
from bot.domain.model import Contact, Milestone, Person, Plan
from bot.domain.status import Status, end_of_day, local_date
from bot.messages.slack_blocks import prompt_blocks
from bot.messages.teams_cards import TEAMS_CHAT
from bot.messages.web_links import LINK_LIFETIME, link_hash, new_link_token, update_url
from bot.metrics import SESSION_KEY as METRICS
from bot.metrics import Metrics
from bot.services.alerts import AdminAlerts
from bot.services.delivery import OutboxWorker
from bot.services.digests import DigestPoster, plan_digests
from bot.services.inbound import Inbound
from bot.services.live_view import LiveViews
from bot.services.prompting import Cycles, SlackLookup
from bot.services.records import Records
from bot.services.support_asks import SupportNotices
from bot.services.transports import Transport
from bot.services.web_answers import UpdatePages
from bot.settings import Settings
from bot.teams import check_webhooks, workflows_transport
from digests.content import Digest, plan_statuses
from handlers.email.imap import ImapReceiver
from handlers.email.local_transport import LocalMailTransport
from handlers.email.smtp import SmtpTransport
from handlers.email.xoauth2 import Ms365TokenProvider
from handlers.files import export
from handlers.slack.answers import Followups
from handlers.slack.app import SlackChannel, build_slack_app
from handlers.slack.transport import SlackTransport, lookup_user_by_email
from handlers.web.metrics import MetricsServer
from handlers.web.oidc import OidcClient, OidcConfig
from handlers.web.server import WebServer, build_web_app
from storage.db import Sessions, migrate, open_database
from storage.evidence import EvidenceRepository
from storage.repositories import PlanRepository, TrackedPlan
from storage.web_links import WebLinks

if TYPE_CHECKING:
    from slack_sdk.web.async_client import AsyncWebClient

    from handlers.email.listener import SmtpListener
    from handlers.teams.channel import TeamsChannel

log = logging.getLogger(__name__)


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
        self.metrics = Metrics()  # its own registry: apps in one process never share counts
        self.database = open_database(settings.database_url, info={METRICS: self.metrics})
        self.engine = self.database.engine
        self.sessions: Sessions = self.database.sessions

    async def migrate(self) -> None:
        await migrate(self.settings.database_url)

    async def close(self) -> None:
        await self.database.close()

    async def tracked(self, plan_key: str) -> TrackedPlan:
        async with self.sessions() as session:
            return await PlanRepository(session).tracked(plan_key)

    def today(self, timezone: str) -> date:
        return local_date(self.clock(), timezone)

    async def statuses(self, plan_key: str, *, as_of: date | None = None) -> list[MilestoneLine]:
        async with self.sessions() as session:
            plan = await PlanRepository(session).get(plan_key)
            day = as_of or self.today(plan.timezone)
            tracked = await PlanRepository(session).tracked(
                plan_key, until=end_of_day(day, plan.timezone)
            )
        lines = []
        for action in tracked.actions:
            for milestone in action.milestones:
                status = tracked.status(milestone, today=day)
                lines.append(MilestoneLine(milestone, action.priority, status))
        return lines

    async def export(
        self, plan_key: str, *, fmt: str, as_of: date | None = None, output: Path | None = None
    ) -> Path:
        """Write the plan with each milestone's latest rating, note, evidence, date and
        status."""
        async with self.sessions() as session:
            plan = await PlanRepository(session).get(plan_key)
            day = as_of or self.today(plan.timezone)
            tracked = await PlanRepository(session).tracked(
                plan_key, until=end_of_day(day, plan.timezone)
            )
            stored = await PlanRepository(session).stored(plan_key)
            assert stored is not None
            layout = stored.settings.get("layout")
            evidence = await EvidenceRepository(session).of_plan(
                plan_key, until=end_of_day(day, plan.timezone)
            )
        statuses = plan_statuses(plan, tracked.actions, tracked.updates, as_of=day)
        table = export.rows(
            tracked,
            statuses,
            layout if isinstance(layout, list) else None,
            {ref: found.text for ref, found in evidence.items()},
        )
        if output is None:
            folder = self.settings.data_dir / "exports"
            folder.mkdir(parents=True, exist_ok=True)
            output = folder / f"{plan_key}-{day.isoformat()}.{fmt}"
        if fmt == "xlsx":
            await asyncio.to_thread(export.write_xlsx, output, table, title=plan.title, as_of=day)
        else:
            await asyncio.to_thread(export.write_csv, output, table)
        return output

    async def digests(
        self, plan_key: str, *, network: str | None = None, as_of: date | None = None
    ) -> list[Digest]:
        """The digest content of each of the plan's networks (or of one)."""
        return await plan_digests(
            self.sessions, plan_key, today=self.clock, network=network, as_of=as_of
        )


def digest_poster(pulse: PlanPulse) -> DigestPoster:
    """Digests as the settings say (Slack when on, Teams webhooks, email from MAIL_FROM)."""
    return DigestPoster(pulse.sessions, pulse.settings, clock=pulse.clock)


async def check(
    pulse: PlanPulse, *, missing_database: str | None = None, teams: bool = False
) -> list[tuple[bool, str]]:
    """Configuration and connectivity, one line per part: (ok, what was found). With
    `missing_database` (where the SQLite file would be), the database is not opened, so
    checking never creates it. Each network's Teams webhook is checked for form; with
    `teams`, a test card is posted to each."""
    settings = pulse.settings
    results: list[tuple[bool, str]] = []
    if missing_database is not None:
        results.append(
            (True, f"database: none yet at {missing_database} (`pulse init` creates it)")
        )
    else:
        try:
            async with pulse.sessions() as session:
                plans = await PlanRepository(session).keys()
            url = settings.redacted_database_url()
            results.append((True, f"database: {url} ({len(plans)} plans)"))
        except Exception as exc:  # report every part, whatever fails
            results.append((False, f"database: {type(exc).__name__}: {exc}"))
    if settings.local_mode:
        results.append((True, f"local mode: mail as files under {settings.mail_dir}"))
    results += await addresses(settings)
    parts: list[tuple[str, Callable[[], Awaitable[str]]]] = []
    if settings.smtp_host:
        parts.append(("SMTP", SmtpTransport.from_settings(settings).check))
    if settings.imap_host:
        receiver = imap_receiver(
            settings,
            Inbound(
                pulse.sessions,
                mail_from=settings.sender,
                clock=pulse.clock,
                signer=settings.signer(),
            ),
        )
        if receiver is not None:
            parts.append(("IMAP", receiver.check))
    client = slack_client(settings)
    if client is not None:

        async def slack() -> str:
            answer = await client.auth_test()
            return f"Slack: authenticated as {answer.get('user')} in {answer.get('team')}"

        parts.append(("Slack", slack))
    bot_channel = teams_channel(pulse)
    if bot_channel is not None:
        chat = bot_channel

        async def teams_bot() -> str:
            try:
                return await chat.check()
            finally:
                await chat.close()

        parts.append(("Teams", teams_bot))
    for name, probe in parts:
        try:
            results.append((True, await asyncio.wait_for(probe(), timeout=30)))
        except Exception as exc:
            results.append((False, f"{name}: {type(exc).__name__}: {exc}"))
    if missing_database is None:
        try:
            results += await check_webhooks(pulse, post=teams)
        except Exception as exc:  # never with the URL: the exception's name alone
            results.append((False, f"Teams: {type(exc).__name__}"))
    return results


async def addresses(settings: Settings) -> list[tuple[bool, str]]:
    """Where `pulse run` serves: the web server, and health and metrics (with what a bot
    running now answers there; none running is no failure)."""
    web = f"http://{settings.http_host}:{settings.http_port}"
    base = settings.web_base_url
    lines = [(True, f"web server: {web}" + (f" (links use {base})" if base != web else ""))]
    if settings.metrics_port == 0:
        return [*lines, (True, "metrics: on any free port (`pulse run` logs which)")]
    url = f"http://{settings.metrics_host}:{settings.metrics_port}"
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as client,
            client.get(f"{url}/healthz") as answer,
        ):
            found = "healthy" if answer.status == 200 else f"unhealthy ({answer.status})"
    except (aiohttp.ClientError, TimeoutError):
        found = "nothing answering now"
    return [*lines, (True, f"metrics: {url}/metrics, health: {url}/healthz ({found})")]


@dataclass(slots=True)
class PassReport:
    """What one pass of every loop did (`pulse run --once`)."""

    taken_in: int
    answers: int
    prompts: int
    reminders: int
    delivered: int
    digests: int = 0


def transports(settings: Settings, teams: TeamsChannel | None = None) -> dict[str, Transport]:
    """One transport per channel: SMTP when configured, else local mail files; Slack when
    its token and signing secret are set; Teams when its bot is."""
    chosen: dict[str, Transport] = {}
    if settings.smtp_host:
        chosen["email"] = SmtpTransport.from_settings(settings)
    else:
        chosen["email"] = LocalMailTransport(settings.mail_dir / "outbox")
    client = slack_client(settings)
    if client is not None:
        chosen["slack"] = SlackTransport(client=client)
    if teams is not None:
        chosen[TEAMS_CHAT] = teams.transport
    return chosen


def slack_client(settings: Settings) -> AsyncWebClient | None:
    """A Web API client with the bot token, at SLACK_API_URL; None when Slack is off."""
    if not settings.slack_enabled or settings.slack_bot_token is None:
        return None
    from slack_sdk.web.async_client import AsyncWebClient

    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
    )


def slack_prompt_posts(
    plan: Plan,
    person: Person,
    items: Sequence[PromptItem],
    prompt_id: int,
    contacts: Sequence[Contact] = (),
) -> list[dict[str, Any]]:
    """A prompt as Slack DM posts for the outbox (the first, then thread replies)."""
    return [
        {"text": f"{plan.title}: progress update", "blocks": blocks}
        for blocks in prompt_blocks(plan.title, person.name, items, prompt_id, contacts=contacts)
    ]


def teams_prompt_cards(
    plan: Plan,
    person: Person,
    items: Sequence[PromptItem],
    prompt_id: int,
    contacts: Sequence[Contact],
    update_url: str | None,
) -> list[dict[str, Any]]:
    """A prompt as the message activities of its Adaptive Cards (one, unless it is long),
    for the outbox."""
    from bot.messages.teams_cards import card_activity, prompt_cards

    cards = prompt_cards(
        plan.title, person.name, items, prompt_id, update_url=update_url, contacts=contacts
    )
    return [card_activity(card, summary=f"{plan.title}: progress update") for card in cards]


def cycles_for(pulse: PlanPulse) -> Cycles:
    """Cycles as configured: prompts by Slack DM for those who prefer it when Slack is on."""
    settings = pulse.settings
    lookup: SlackLookup | None = None
    client = slack_client(settings)
    if client is not None:

        async def lookup(email: str) -> str | None:
            return await lookup_user_by_email(client, email)

    return Cycles(
        pulse.sessions,
        mail_from=settings.sender,
        clock=pulse.clock,
        slack_prompt=slack_prompt_posts if settings.slack_enabled else None,
        slack_lookup=lookup,
        signer=settings.signer(),
        web_base_url=settings.web_base_url,
        teams_prompt=teams_prompt_cards if settings.teams_enabled else None,
    )


def slack_channel(pulse: PlanPulse) -> SlackChannel | None:
    """The Slack app (Socket Mode with SLACK_APP_TOKEN, else HTTP) when Slack is on."""
    settings = pulse.settings
    client = slack_client(settings)
    if client is None:
        return None
    assert settings.slack_signing_secret is not None
    secret = settings.slack_signing_secret.get_secret_value()
    followups = Followups()
    app = build_slack_app(
        sessions=pulse.sessions,
        client=client,
        signing_secret=secret,
        clock=pulse.clock,
        followups=followups,
    )
    app_token = settings.slack_app_token.get_secret_value() if settings.slack_app_token else None
    return SlackChannel(
        app,
        signing_secret=secret,
        app_token=app_token or None,
        followups=followups,
    )


def imap_receiver(settings: Settings, inbound: Inbound) -> ImapReceiver | None:
    """The IMAP reader when IMAP_HOST is set (OAuth2 when MS365_* are set and no password)."""
    if not settings.imap_host:
        return None
    provider = (
        None if settings.imap_password is not None else Ms365TokenProvider.from_settings(settings)
    )

    async def take_in(raw: bytes) -> bool:
        return await inbound.take_in(raw, source="imap")

    async def too_large(head: bytes, size: int) -> bool:
        return await inbound.take_in_too_large(head, size=size, source="imap")

    return ImapReceiver.from_settings(
        settings, take_in, token_provider=provider, too_large=too_large
    )


def teams_channel(pulse: PlanPulse) -> TeamsChannel | None:
    """The Teams bot when TEAMS_APP_ID and TEAMS_APP_PASSWORD are set; else None."""
    settings = pulse.settings
    if not settings.teams_enabled or settings.teams_app_password is None:
        return None
    from handlers.teams.channel import TeamsChannel

    return TeamsChannel(
        pulse.sessions,
        app_id=(settings.teams_app_id or "").strip(),
        password=settings.teams_app_password.get_secret_value(),
        tenant_id=settings.teams_tenant_id,
        authority=settings.teams_token_authority,
        metadata_url=settings.teams_openid_metadata_url,
        clock=pulse.clock,
        ca_file=settings.teams_ca_file,
        web_base_url=settings.web_base_url,
    )


def web_server(
    pulse: PlanPulse, slack: SlackChannel | None, teams: TeamsChannel | None = None
) -> WebServer:
    """The one web server on HTTP_HOST:HTTP_PORT: the update pages, Slack's events route
    when Slack runs in HTTP mode, and the Teams bot's endpoint when Teams is on."""
    settings = pulse.settings
    pages = UpdatePages(
        pulse.sessions, clock=pulse.clock, signer=settings.signer(), mail_from=settings.mail_from
    )

    async def digest_of(plan_key: str, network: str, as_of: date) -> Digest:
        (digest,) = await pulse.digests(plan_key, network=network, as_of=as_of)
        return digest

    app = build_web_app(
        pages,
        signer=settings.signer(),
        clock=pulse.clock,
        trusted_proxies=settings.trusted_proxies,
        slack=slack.http_app() if slack is not None else None,
        teams=teams.http_app() if teams is not None else None,
        live=LiveViews(pulse.sessions, clock=pulse.clock, digest_of=digest_of),
        sign_in=oidc_client(settings, pulse.clock),
        base_url=settings.web_base_url,
    )
    return WebServer(app, host=settings.http_host, port=settings.http_port)


def oidc_client(settings: Settings, clock: Clock) -> OidcClient | None:
    """The OpenID Connect client of the live view's sign-in, when WEB_SIGN_IN=oidc."""
    if settings.web_sign_in != "oidc" or settings.oidc_client_secret is None:
        return None
    return OidcClient(
        OidcConfig(
            issuer=settings.oidc_issuer or "",
            client_id=settings.oidc_client_id or "",
            client_secret=settings.oidc_client_secret.get_secret_value(),
            tenant_id=settings.oidc_tenant_id or "",
        ),
        clock=clock,
    )


async def local_link(pulse: PlanPulse) -> tuple[str, str] | None:
    """A new update-page link for one open prompt (whose person's name, the link), for
    `pulse run` to show in local mode; None when no prompt is open."""
    signer = pulse.settings.signer()
    now = pulse.clock()
    async with pulse.sessions() as session, session.begin():
        links = WebLinks(session)
        found = await links.open_prompt()
        if found is None:
            return None
        prompt, person = found
        token = new_link_token()
        await links.add(
            [(prompt.id, person.id, link_hash(token, signer))],
            now=now,
            expires_at=now + LINK_LIFETIME,
        )
    return person.name, update_url(pulse.settings.web_base_url, token)


class Runner:
    """Every loop of the running bot: scheduler tick, outbox worker, inbound mail."""

    def __init__(self, pulse: PlanPulse) -> None:
        settings = pulse.settings
        self.pulse = pulse
        mail_dir = settings.mail_dir
        self.cycles = cycles_for(pulse)
        self.slack = slack_channel(pulse)
        self.teams = teams_channel(pulse)
        self.digests = digest_poster(pulse)
        self.support = SupportNotices(pulse.sessions, mail_from=settings.sender)
        alerts = AdminAlerts(settings.admin_email, mail_from=settings.sender)
        self.worker = OutboxWorker(
            pulse.sessions,
            {**transports(settings, self.teams), "teams": workflows_transport(pulse)},
            clock=pulse.clock,
            alerts=alerts,
        )
        self.inbound = Inbound(
            pulse.sessions,
            mail_from=settings.sender,
            clock=pulse.clock,
            inbox=mail_dir / "inbox",
            max_bytes=settings.max_inbound_bytes,
            bounce_limit=settings.bounce_limit,
            trusted_authserv_id=settings.trusted_authserv_id,
            signer=settings.signer(),
            alerts=alerts,
        )
        (mail_dir / "inbox").mkdir(parents=True, exist_ok=True)
        (mail_dir / "outbox").mkdir(parents=True, exist_ok=True)
        self.imap = imap_receiver(settings, self.inbound)
        self.health = MetricsServer(pulse.metrics, pulse.sessions, clock=pulse.clock)
        self.web = web_server(pulse, self.slack, self.teams)
        self.smtp_listener: SmtpListener | None = None
        self._jobs: set[asyncio.Task[Any]] = set()
        if settings.smtp_listen_port is not None:
            # Imported only when on: aiosmtpd is needed only by sites that use the listener.
            from handlers.email.listener import SmtpListener

            self.smtp_listener = SmtpListener.from_settings(settings, self.inbound)

    async def run_once(self) -> PassReport:
        """One pass of each loop: take in replies, tick, deliver what is due."""
        taken = await self.inbound.sweep_inbox()
        if self.imap is not None:
            try:
                taken += await self.imap.sweep()
            finally:
                await self.imap.close()
        outcomes = await self.inbound.process_all()
        tick = await self.cycles.tick()
        posted = await self.digests.tick(self.pulse.clock())
        await self.support.tick(self.pulse.clock())
        await Records(self.pulse).sweep(self.pulse.clock())
        delivered = await self.worker.drain()
        return PassReport(
            taken_in=taken,
            answers=sum(o.recorded for o in outcomes),
            prompts=sum(c.created for c in tick.cycles),
            reminders=tick.reminders,
            delivered=delivered,
            digests=sum(1 for p in posted if p.posted),
        )

    async def run_forever(
        self,
        stop: asyncio.Event,
        *,
        tick_every: float = 60.0,
        inbox_every: float = 5.0,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        """Run until `stop` is set; then finish the message in hand and release leases.
        In local mode, `announce` is told the update-page link of one open prompt."""
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        settings = self.pulse.settings
        # First, so a port already in use stops the bot before anything else started.
        await self.health.start(settings.metrics_host, settings.metrics_port)
        if self.smtp_listener is not None and settings.smtp_listen_port is not None:
            await self.smtp_listener.start(settings.smtp_listen_host, settings.smtp_listen_port)
        await self.web.start()
        if announce is not None and settings.local_mode:
            found = await local_link(self.pulse)
            if found is not None:
                announce(f"open this to answer as {found[0]}: {found[1]}")
        scheduler = AsyncIOScheduler(timezone="UTC")
        # The job store is memory and never trusted: a missed tick is harmless because the
        # tick derives what is due from the database and its watermark.
        scheduler.add_job(
            self._job,
            "interval",
            args=[self._tick],
            seconds=tick_every,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.pulse.clock(),
        )
        scheduler.add_job(
            self._job,
            "interval",
            args=[self._inbox],
            seconds=inbox_every,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=self.pulse.clock(),
        )
        scheduler.start()
        if self.slack is not None:
            await self.slack.start()
        worker = asyncio.create_task(self.worker.run_forever())
        imap = asyncio.create_task(self.imap.run(stop)) if self.imap is not None else None
        try:
            await stop.wait()
        finally:
            if self.smtp_listener is not None:
                await self.smtp_listener.stop()
            await self.web.stop()
            if self.teams is not None:
                await self.teams.close()
            # No new runs; a tick or inbox pass under way finishes its transaction (a job
            # cancelled mid-transaction could leave SQLite's write lock to the next one).
            scheduler.pause()
            await self._jobs_ended()
            scheduler.shutdown(wait=False)
            if self.slack is not None:
                await self.slack.stop()
            self.worker.stop()
            await worker
            if imap is not None:
                await imap
            await self.health.stop()

    async def _job(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run a scheduled job, known to the runner until it ends, so that shutting down
        waits for it: a job cancelled and never awaited would be left mid-transaction."""
        task = asyncio.current_task()
        if task is not None:
            self._jobs.add(task)
        try:
            await work()
        except asyncio.CancelledError:
            # Cancelled by a stop that outlasted its grace (`_jobs_ended`): the job ends
            # here, as intended, rather than reaching APScheduler as an error.
            log.debug("scheduled job stopped")
        finally:
            if task is not None:
                self._jobs.discard(task)

    async def _jobs_ended(self, grace: float = 30.0) -> None:
        """Wait for the scheduled jobs still running to end, up to `grace` seconds; cancel
        those still running then, and wait until each has ended."""
        running = list(self._jobs)
        if not running:
            return
        _, late = await asyncio.wait(running, timeout=grace)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _tick(self) -> None:
        try:
            await self.cycles.tick()
            await self.digests.tick(self.pulse.clock())
            await self.support.tick(self.pulse.clock())
            # After the digests, a bounded number of short batches: never in their way.
            await Records(self.pulse).sweep(self.pulse.clock())
            self.pulse.metrics.tick_done(self.pulse.clock())
        except Exception:  # a database outage is retried at the next tick
            log.exception("tick failed; retrying at the next one")

    async def _inbox(self) -> None:
        try:
            await self.inbound.sweep_inbox()
            await self.inbound.process_all()
        except Exception:
            log.exception("inbound pass failed; retrying")
