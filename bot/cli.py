"""The `pulse` command. The only module that reads the environment, configures logging and
runs the event loop; everything else takes its settings and clock as parameters."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, time
from email.parser import HeaderParser
from email.utils import parseaddr
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from bot.app import PlanPulse, Runner, check, cycles_for, digest_poster
from bot.cli_groups import command_group
from bot.clock import system_clock
from bot.demo import run_demo
from bot.domain import timescales
from bot.domain.errors import ImportFailed, PulseError, TimescaleError
from bot.domain.leads import draft_people
from bot.domain.mail_states import INBOX_PROBLEMS, OutboxState
from bot.domain.webhooks import redacted_webhook
from bot.live_cli import register_live
from bot.locks import database_lock
from bot.messages.inbound_mail import HEAD_BYTES, header_section
from bot.pack_cli import register_pack
from bot.records_cli import audit_import, audit_plan_export, register_records
from bot.services.delivery import outbox_problems, resolve_message, retry_message
from bot.settings import Settings
from digests.html import render_html, render_text
from digests.markdown import render_markdown
from digests.slack import render_slack
from digests.teams import render_teams
from handlers.email.local_mail import write_local_reply
from handlers.files.importing import import_plan
from handlers.files.plan_files import read_plan
from storage.bulk import tune_collector
from storage.db import database_name, sqlite_path
from storage.inbound_mail import InboundRepository
from storage.outbox import OutboxRepository
from storage.repositories import NetworkRepository, PlanRepository

app = typer.Typer(
    name="pulse",
    help="Plan Pulse: keeps improvement plans current by asking each lead for progress.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: flags read `--dry-run`, not `--dry-run <bool>` as the boxed form shows them.
    rich_markup_mode=None,
)
people_app = command_group(
    app, "people", "People: a people file drafted from a plan; a person's data exported or erased."
)
log = logging.getLogger("pulse")
T = TypeVar("T")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(level: str, fmt: str | None = None, *, service: bool = False) -> None:
    """Text on a terminal, JSON for collectors (LOG_FORMAT overrides). On a terminal a
    command other than `pulse run` prints its own summary, so only warnings are logged:
    each summary is shown once."""
    handler = logging.StreamHandler(sys.stderr)
    text = (fmt or ("text" if sys.stderr.isatty() else "json")) == "text"
    if text:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    if text and not service and root.getEffectiveLevel() == logging.INFO:
        root.setLevel(logging.WARNING)
    # Alembic and SQLAlchemy are chatty at INFO; their news is not ours. APScheduler logs
    # every job it runs (twice every five seconds): the tick logs what it did itself.
    for chatty in ("alembic", "sqlalchemy", "apscheduler"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # aioimaplib logs whole messages at DEBUG: never let mail bodies reach the log.
    logging.getLogger("aioimaplib").setLevel(logging.INFO)


def _settings(*, service: bool = False) -> Settings:
    """The settings from the environment and `$PULSE_HOME/.env` (default `./.env`)."""
    home = Path(os.environ.get("PULSE_HOME") or ".")
    try:
        settings = Settings(_env_file=home / ".env")
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            typer.echo(f"configuration error: {where + ': ' if where else ''}{message}", err=True)
        raise typer.Exit(2) from None
    _configure_logging(settings.log_level, settings.log_format, service=service)
    return settings


def _missing_database(settings: Settings) -> str | None:
    """Where the SQLite database was looked for, when it is not there (None when it is, or
    the database is PostgreSQL, whose server says so itself)."""
    path = sqlite_path(settings.database_url)
    if path is None or path.is_file():
        return None
    return str(path.resolve())


def _no_such_database(exc: BaseException) -> bool:
    """Whether PostgreSQL refused the connection because the database does not exist
    (asyncpg's error, raised as it is or wrapped by SQLAlchemy)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        kind = type(seen)
        if kind.__name__ == "InvalidCatalogNameError" and kind.__module__.startswith("asyncpg"):
            return True
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return False


def _run(
    work: Callable[[PlanPulse], Awaitable[T]],
    *,
    migrate: bool = True,
    clock: datetime | None = None,
    creates: bool = False,
    missing_ok: bool = False,
    service: bool = False,
) -> T:
    """Build the app, bring the schema up to date, run `work`, and turn our errors into
    messages and exit codes (tracebacks go to the log only). Only a command that `creates`
    the database (`init`, `import`) makes one where there is none; one that is `missing_ok`
    runs without it (and without migrating); the others say where they looked."""
    settings = _settings(service=service)
    where = None if creates else _missing_database(settings)
    if where is not None and missing_ok:
        migrate = False
    elif where is not None:
        typer.echo(
            f"error: no database at {where} (DATABASE_URL); "
            "`pulse init` creates it, `pulse import PLAN_FILE` loads a plan into it",
            err=True,
        )
        raise typer.Exit(1)

    async def main() -> T:
        pulse = PlanPulse(settings, clock=(lambda: clock) if clock else system_clock)
        try:
            if migrate:
                await pulse.migrate()
            return await work(pulse)
        finally:
            await pulse.close()

    try:
        return asyncio.run(main())
    except ImportFailed as exc:
        typer.echo(str(exc), err=True)
        for problem in exc.problems:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1) from None
    except PulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except OSError as exc:
        log.debug("failed", exc_info=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except Exception as exc:
        if not _no_such_database(exc):
            raise
        typer.echo(
            f"error: no database {database_name(settings.database_url)!r} on the server "
            f"at {settings.redacted_database_url()}; create it (createdb) and run `pulse init`",
            err=True,
        )
        raise typer.Exit(1) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pulse {metadata.version('plan-pulse')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="show the version and exit"
        ),
    ] = False,
) -> None:
    """Plan Pulse: keeps improvement plans current by asking each lead for progress."""


def _day(value: str | None, option: str) -> date | None:
    """A day from the command line, read as every channel reads one (`timescales.read_day`):
    2026-11-20, 20/11/2026, 20th Nov 2026, Nov 2026 (its last day)."""
    if value is None:
        return None
    try:
        return timescales.read_day(value)
    except TimescaleError as exc:
        raise typer.BadParameter(exc.reason, param_hint=option) from None


@app.command()
def init() -> None:
    """Create the database, or bring its schema up to date (safe to run again)."""

    async def work(pulse: PlanPulse) -> str:
        return pulse.settings.redacted_database_url()

    url = _run(work, creates=True)
    typer.echo(f"database ready: {url}")


@app.command("import")
def import_(
    plan_file: Annotated[
        Path,
        typer.Argument(
            help="the plan: .docx, .xlsx, .csv, .yaml, or .txt (a pasted table); "
            "- reads a pasted table from standard input"
        ),
    ],
    people: Annotated[
        Path | None, typer.Option("--people", exists=True, dir_okay=False, help="people file")
    ] = None,
    networks: Annotated[
        Path | None,
        typer.Option("--networks", exists=True, dir_okay=False, help="networks file"),
    ] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="the plan's key")] = None,
    ratings_as_of: Annotated[
        str | None,
        typer.Option("--ratings-as-of", help="date for ratings in the progress column"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check and report; write nothing")
    ] = False,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            exists=True,
            dir_okay=False,
            help="YAML plan settings for a CSV/XLSX plan (the YAML form's plan: block)",
        ),
    ] = None,
    prefer_sheet: Annotated[
        bool,
        typer.Option(
            "--prefer-sheet", help="record the sheet's ratings even where a lead answered since"
        ),
    ] = False,
    retire_missing: Annotated[
        bool,
        typer.Option(
            "--retire-missing",
            help="allow retiring more than half of the plan's actions (those not in the file)",
        ),
    ] = False,
    sheet: Annotated[
        str | None,
        typer.Option("--sheet", help="the XLSX sheet (default: the first with a plan's header)"),
    ] = None,
    shift_dates: Annotated[
        bool,
        typer.Option(
            "--shift-dates",
            help="move a sample plan's dates by whole months so its latest rated month is this one",
        ),
    ] = False,
) -> None:
    """Import a plan (Word, XLSX, CSV, pasted table or YAML) with its people and networks:
    all or nothing.

    A lead's answer is never undone by the sheet: where the sheet's rating differs from one,
    the answer is kept and the difference listed (unless --prefer-sheet)."""
    as_of = _day(ratings_as_of, "--ratings-as-of")
    path = _plan_path(plan_file)

    async def work(pulse: PlanPulse) -> str:
        report = await import_plan(
            pulse.sessions,
            path,
            now=pulse.clock(),
            people_path=people,
            networks_path=networks,
            plan_key=plan,
            ratings_as_of=as_of,
            dry_run=dry_run,
            settings_path=settings,
            prefer_sheet=prefer_sheet,
            retire_missing=retire_missing,
            sheet=sheet,
            shift_dates=shift_dates,
        )
        if not dry_run:
            files = {"plan": path, "people": people, "networks": networks}
            await audit_import(pulse, report, {**files, "settings": settings})
        lines = [f"  {r}" for r in report.renumbered] + [f"  {c}" for c in report.conflicts]
        lines += [f"  {w}" for w in report.warnings]
        return "\n".join([report.summary(), *lines])

    try:
        typer.echo(_run(work, creates=True))
    finally:
        if path != plan_file:
            shutil.rmtree(path.parent, ignore_errors=True)


def _plan_path(plan_file: Path) -> Path:
    """The plan file to read; `-` is a pasted table on standard input, kept in a temporary
    file named after the plan it is (`plan.txt`) for the readers that take a path."""
    if str(plan_file) != "-":
        if not plan_file.is_file():
            raise typer.BadParameter(f"no such file: {plan_file}", param_hint="PLAN_FILE")
        return plan_file
    folder = Path(tempfile.mkdtemp(prefix="pulse-paste-"))
    path = folder / "plan.txt"
    path.write_bytes(sys.stdin.buffer.read())
    return path


plans_app = command_group(
    app,
    "plans",
    "The plans in the store; `pulse plans retire KEY` stops a plan's prompts and digests.",
    lists=True,
)


@plans_app.callback()
def plans(ctx: typer.Context) -> None:
    """List every plan: key, title, live actions, milestones and leads, last import."""
    if ctx.invoked_subcommand is not None:
        return

    async def work(pulse: PlanPulse) -> str:
        async with pulse.sessions() as session:
            found = await PlanRepository(session).summaries()
        if not found:
            return "No plans yet: `pulse import` loads one."
        rows = [("KEY", "TITLE", "ACTIONS", "MILESTONES", "PEOPLE", "LAST IMPORT", "STATE")]
        for plan in found:
            rows.append(
                (
                    plan.key,
                    _one_line(plan.title, 50),
                    str(plan.actions),
                    str(plan.milestones),
                    str(plan.people),
                    plan.last_import.strftime("%Y-%m-%d %H:%M"),
                    f"retired {plan.retired_at:%Y-%m-%d}" if plan.retired_at else "live",
                )
            )
        return _table(rows)

    typer.echo(_run(work))


@app.command("networks")
def networks_() -> None:
    """List every network: key, name, Slack channel, Teams webhook (without its signature),
    coordinators, and whether it follows the whole plan."""

    async def work(pulse: PlanPulse) -> str:
        async with pulse.sessions() as session:
            found = await NetworkRepository(session).all()
        if not found:
            return "No networks yet: give `pulse import` a networks file."
        rows = [("KEY", "NAME", "SLACK", "TEAMS", "COORDINATORS", "ALL ACTIONS")]
        for network in found:
            webhook = network.teams_webhook
            rows.append(
                (
                    network.key,
                    _one_line(network.name, 40),
                    network.slack_channel or "-",
                    redacted_webhook(webhook) if webhook else "-",
                    str(len(network.coordinators)),
                    "yes" if network.all_actions else "no",
                )
            )
        return _table(rows)

    typer.echo(_run(work))


@plans_app.command("retire")
def plans_retire(key: Annotated[str, typer.Argument(help="the plan's key")]) -> None:
    """Retire a plan: no prompts, reminders or digests any more; its history is kept."""

    async def work(pulse: PlanPulse) -> str:
        async with pulse.sessions() as session, session.begin():
            retired = await PlanRepository(session).retire(key, pulse.clock())
        if not retired:
            return f"plan {key} was already retired"
        return f"retired plan {key}: no prompts or digests any more; its history is kept"

    typer.echo(_run(work))


@app.command()
def status(
    plan: Annotated[str | None, typer.Option("--plan", help="the plan's key")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="the day to judge")] = None,
    inbox: Annotated[
        bool,
        typer.Option("--inbox", help="list inbound mail that was not recorded, and why"),
    ] = False,
) -> None:
    """Each milestone's status and the reasons for it, as a table; or, with --inbox, the
    inbound messages that were rejected, ignored, quarantined or unprocessable."""
    if inbox:
        typer.echo(_run(_inbox_problems))
        return
    if plan is None:
        raise typer.BadParameter("give --plan (or --inbox)", param_hint="--plan")
    day = _day(as_of, "--as-of")

    async def work(pulse: PlanPulse) -> str:
        assert plan is not None
        lines = await pulse.statuses(plan, as_of=day)
        rows = [
            (
                "REF",
                "STATUS",
                "DUE",
                "REVISED",
                "RATING",
                "SUPPORT",
                "UPDATED",
                "LEADS",
                "REASONS",
                "MILESTONE",
            )
        ]
        for line in lines:
            s = line.status
            status_text = s.status.value
            if s.days_overdue:
                status_text += f" ({s.days_overdue}d)"
            rows.append(
                (
                    line.milestone.ref,
                    status_text,
                    s.due.isoformat() if s.due else "-",
                    s.revised_due.isoformat() if s.revised_due else "-",
                    str(s.rating) if s.rating else "-",
                    "needed" if s.needs_support else "-",
                    s.updated.isoformat() if s.updated else "-",
                    "/".join(line.milestone.leads) or "no lead",
                    ", ".join(r.value for r in s.reasons) or "-",
                    _one_line(line.milestone.title, 60),
                )
            )
        return "\n".join([_table(rows), *await _outbox_summary(pulse)])

    typer.echo(_run(work))


async def _outbox_summary(pulse: PlanPulse) -> list[str]:
    """One line when messages failed or wait for review: they need a person."""
    async with pulse.sessions() as session:
        counts = await OutboxRepository(session).problem_counts()
    if not counts:
        return []
    failed = counts.get(OutboxState.FAILED)
    parts = [f"{failed} failed"] if failed else []
    review = counts.get(OutboxState.NEEDS_REVIEW)
    if review:
        parts.append(f"{review} need review")
    return ["", f"outbox: {', '.join(parts)} (see `pulse outbox`)"]


async def _inbox_problems(pulse: PlanPulse) -> str:
    """Stored inbound messages that recorded nothing, oldest first, with their outcome."""
    rows = [("ID", "RECEIVED", "STATE", "FROM", "SUBJECT", "OUTCOME")]
    async with pulse.sessions() as session:
        # The start of each message only (its header section), never every message whole.
        stored = await InboundRepository(session).listing(INBOX_PROBLEMS, head_bytes=HEAD_BYTES)
    for row in stored:
        head = HeaderParser().parsestr(header_section(row.head).decode("latin-1"), headersonly=True)
        rows.append(
            (
                str(row.id),
                row.received_at.strftime("%Y-%m-%d %H:%M"),
                row.state,
                _one_line(_address(str(head.get("From", ""))), 40),
                _one_line(str(head.get("Subject", "")).replace("\x00", ""), 50),
                _one_line(row.outcome or "", 70),
            )
        )
    if len(rows) == 1:
        return "No inbound mail was rejected, ignored, quarantined or unprocessable."
    return _table(rows)


def _address(from_header: str) -> str:
    text = from_header.replace("\x00", "")
    return parseaddr(text)[1] or text


class DigestFormat(StrEnum):
    JSON = "json"
    MD = "md"
    HTML = "html"
    SLACK = "slack"
    TEAMS = "teams"
    TEXT = "text"


@app.command()
def digest(
    plan: Annotated[str, typer.Option("--plan", help="the plan's key")],
    network: Annotated[str | None, typer.Option("--network", help="one network's key")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="the digest's day")] = None,
    fmt: Annotated[
        DigestFormat, typer.Option("--format", help="json, md, html, slack, teams or text")
    ] = DigestFormat.JSON,
    post: Annotated[
        bool, typer.Option("--post", help="post it now (once per network and period)")
    ] = False,
    preview: Annotated[bool, typer.Option("--preview", help="only show it (the default)")] = False,
) -> None:
    """Show the digest of the plan's networks (or one), or post it with --post."""
    day = _day(as_of, "--as-of")
    if post and preview:
        raise typer.BadParameter("choose --post or --preview, not both", param_hint="--post")

    async def work(pulse: PlanPulse) -> str:
        if post:
            posted = await digest_poster(pulse).post(
                plan, now=pulse.clock(), as_of=day, network=network
            )
            return (
                "\n".join(
                    f"{p.network} {p.period}: "
                    + (f"{p.messages} messages enqueued" if p.posted else "already posted")
                    for p in posted
                )
                + "\n(`pulse run` delivers them)"
            )
        digests = await pulse.digests(plan, network=network, as_of=day)
        if fmt is DigestFormat.JSON:
            if network:
                return json.dumps(digests[0].to_json(), indent=2, ensure_ascii=False)
            return json.dumps([d.to_json() for d in digests], indent=2, ensure_ascii=False)
        if fmt is DigestFormat.SLACK:
            slack = [{"network": d.network, "posts": render_slack(d)} for d in digests]
            return json.dumps(slack[0] if network else slack, indent=2, ensure_ascii=False)
        if fmt is DigestFormat.TEAMS:
            names = {p.key: p.name for p in (await pulse.tracked(plan)).people}
            teams = [{"network": d.network, "posts": render_teams(d, names=names)} for d in digests]
            return json.dumps(teams[0] if network else teams, indent=2, ensure_ascii=False)
        if fmt is DigestFormat.HTML:
            names = {p.key: p.name for p in (await pulse.tracked(plan)).people}
            return "\n".join(render_html(d, names=names) for d in digests)
        if fmt is DigestFormat.TEXT:
            return "\n".join(render_text(d) for d in digests)
        return "\n".join(render_markdown(d) for d in digests)

    typer.echo(_run(work))


@app.command("check")
def check_(
    teams: Annotated[
        bool, typer.Option("--teams", help="post a test card to each network's Teams channel")
    ] = False,
) -> None:
    """Check the configuration and connectivity: database, SMTP, IMAP, Slack, each Teams
    webhook's form; and say where the web server and health and metrics listen."""

    async def work(pulse: PlanPulse) -> list[tuple[bool, str]]:
        return await check(pulse, missing_database=_missing_database(pulse.settings), teams=teams)

    results = _run(work, missing_ok=True)
    for ok, line in results:
        typer.echo(f"{'ok  ' if ok else 'FAIL'} {line}")
    if not all(ok for ok, _ in results):
        raise typer.Exit(1)


@app.command()
def demo(
    folder: Annotated[
        Path | None, typer.Option("--folder", help="where the demo keeps its files")
    ] = None,
) -> None:
    """A whole cycle of the sample plan in local mode, with scripted replies, in its own
    folder: prompts, answers, an out-of-office, a reminder, a late reply, the digest."""
    settings = _settings()
    where = folder or settings.data_dir / "demo"
    sample = Path(__file__).resolve().parent.parent / "examples" / "wirral" / "plan.yaml"
    if not sample.exists():
        typer.echo(f"error: the sample plan is not at {sample}", err=True)
        raise typer.Exit(1)
    report = asyncio.run(run_demo(where, sample, say=typer.echo))
    typer.echo("")
    typer.echo(report.digest_markdown)
    typer.echo(f"Digest written as HTML to {report.digest_html}")
    typer.echo(f"Every message is in {where / 'mail' / 'outbox'}")


class ExportFormat(StrEnum):
    XLSX = "xlsx"
    CSV = "csv"


@app.command("export")
def export_(
    plan: Annotated[str, typer.Option("--plan", help="the plan's key")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="xlsx or csv")] = ExportFormat.XLSX,
    as_of: Annotated[str | None, typer.Option("--as-of", help="the day to report")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", dir_okay=False, help="file to write")
    ] = None,
) -> None:
    """Write the plan back with each milestone's latest rating, note, date and status: for
    the board, an XLSX with a Summary sheet and chart, typed cells, RAG status, A4 print."""
    day = _day(as_of, "--as-of")

    async def work(pulse: PlanPulse) -> str:
        path = await pulse.export(plan, fmt=fmt.value, as_of=day, output=output)
        await audit_plan_export(pulse, plan, path, fmt.value)
        return f"exported {plan} to {path}"

    typer.echo(_run(work))


_TIME_OF_DAY = re.compile(
    r"^(?P<day>.+?)(?:[ T](?P<time>\d{1,2}:\d{2}(?::\d{2})?))?(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


def _moment(value: str | None) -> datetime | None:
    """--now: a day as --as-of takes it, with an optional time and offset; naive is UTC
    (`2026-11-23T09:05`, `23/11/2026 09:05`, `2026-11-23 09:05Z`, `2026-11-23`)."""
    if value is None:
        return None
    moment = _read_moment(value.strip())
    if moment is None:
        raise typer.BadParameter(
            f"not a date-time: {value!r} "
            "(e.g. 2026-11-23T09:05, 23/11/2026 09:05 or 2026-11-23T09:05+00:00)",
            param_hint="--now",
        )
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_moment(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    found = _TIME_OF_DAY.match(text)
    if found is None:
        return None
    try:
        day = _day(found["day"], "--now")
        clock = time.fromisoformat(found["time"].zfill(5)) if found["time"] else time(0)
        zone = (found["zone"] or "+00:00").replace("Z", "+00:00")
        offset = datetime.fromisoformat(f"2000-01-01T00:00{zone}").tzinfo
    except (typer.BadParameter, ValueError):
        return None
    return datetime.combine(day, clock, offset) if day is not None else None


@app.command()
def prompt(
    plan: Annotated[str, typer.Option("--plan", help="the plan's key")],
    person: Annotated[str | None, typer.Option("--person", help="only this person")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show who would be asked about what")
    ] = False,
    now: Annotated[str | None, typer.Option("--now", help="act as if at this moment")] = None,
) -> None:
    """Start this week's cycle for a plan now, through the outbox (nobody is asked twice)."""
    moment = _moment(now)

    async def work(pulse: PlanPulse) -> str:
        cycles = cycles_for(pulse)
        report = await cycles.start_cycle(plan, now=pulse.clock(), only=person, dry_run=dry_run)
        lines = []
        for planned in report.planned:
            refs = ", ".join(item.milestone_ref for item in planned.items)
            extra = f" (for {', '.join(planned.on_behalf_of)})" if planned.on_behalf_of else ""
            lines.append(f"  {planned.person_key}{extra}: {refs}")
        if dry_run:
            head = f"would prompt {len(report.planned)} people for {plan}, cycle {report.cycle}:"
        else:
            head = (
                f"cycle {report.cycle} of {plan}: {report.created} prompts enqueued, "
                f"{report.already} already prompted, {len(report.skipped)} unreachable"
            )
        if report.skipped:
            lines.append(
                "  unreachable (no email address, or it bounces): " + ", ".join(report.skipped)
            )
        if report.not_in_slack:
            lines.append(
                "  not found in Slack by their email, asked by email instead: "
                + ", ".join(report.not_in_slack)
            )
        if report.not_in_teams:
            lines.append(
                "  the Teams app is not installed for them yet, asked by email instead: "
                + ", ".join(report.not_in_teams)
            )
        return "\n".join([head, *lines])

    typer.echo(_run(work, clock=moment))


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="one pass of each loop, then exit")] = False,
    now: Annotated[str | None, typer.Option("--now", help="act as if at this moment")] = None,
) -> None:
    """Run every loop (scheduler tick, outbox, inbound mail) until stopped."""
    moment = _moment(now)
    if moment is not None and not once:
        raise typer.BadParameter("--now only makes sense with --once", param_hint="--now")

    async def work(pulse: PlanPulse) -> str:
        database = sqlite_path(pulse.settings.database_url)
        lock = database_lock(database) if database is not None else None
        if lock is not None:
            lock.acquire()
        try:
            runner = Runner(pulse)
            if once:
                done = await runner.run_once()
                return (
                    f"taken in {done.taken_in} messages, recorded {done.answers} answers, "
                    f"enqueued {done.prompts} prompts and {done.reminders} reminders, "
                    f"delivered {done.delivered} messages"
                )
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            log.info("%s; Ctrl-C to stop", _what_runs(pulse.settings))
            await runner.run_forever(stop, announce=typer.echo)
            return "stopped"
        finally:
            if lock is not None:
                lock.release()

    typer.echo(_run(work, clock=moment, service=not once))


def _what_runs(settings: Settings) -> str:
    """One line saying what `pulse run` does with these settings."""
    if settings.smtp_host:
        mail = f"mail by SMTP {settings.smtp_host}"
    else:
        mail = f"local mode: mail as files in {settings.mail_dir}"
    inbound = [f"IMAP {settings.imap_host}"] if settings.imap_host else []
    if settings.smtp_listen_port is not None:
        inbound.append(f"SMTP listener on port {settings.smtp_listen_port}")
    if settings.slack_enabled:
        slack = "Slack in Socket Mode" if settings.slack_app_token else "Slack over HTTP"
    else:
        slack = "Slack off"
    parts = [mail, *(f"replies by {i}" for i in inbound), slack]
    return "Plan Pulse running (prompts, reminders, digests every minute): " + ", ".join(parts)


outbox_app = command_group(
    app,
    "outbox",
    "Messages that failed or need review: list them, send one again, or settle one.",
    lists=True,
)


@outbox_app.callback()
def outbox(ctx: typer.Context) -> None:
    """List failed and needs-review messages: id, state, kind, recipient, when, why."""
    if ctx.invoked_subcommand is not None:
        return

    async def work(pulse: PlanPulse) -> str:
        problems = await outbox_problems(pulse.sessions)
        if not problems:
            return "No outbox message has failed or needs review."
        rows = [("ID", "STATE", "KIND", "CHANNEL", "RECIPIENT", "WHEN", "WHY")]
        for p in problems:
            rows.append(
                (
                    str(p.id),
                    p.state.replace("_", " "),
                    p.kind,
                    p.channel,
                    _one_line(p.recipient, 40),
                    p.when.strftime("%Y-%m-%d %H:%M"),
                    _one_line(p.why or "-", 160),
                )
            )
        return _table(rows)

    typer.echo(_run(work))


@outbox_app.command("retry")
def outbox_retry(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="the message's id")],
) -> None:
    """Send a failed or needs-review message again (for one that needs review: only once
    you have checked that it did not arrive)."""

    async def work(pulse: PlanPulse) -> str:
        await retry_message(pulse.sessions, message_id, now=pulse.clock())
        return f"outbox message {message_id} will be sent again (`pulse run` sends it)"

    typer.echo(_run(work))


@outbox_app.command("resolve")
def outbox_resolve(
    message_id: Annotated[int, typer.Argument(metavar="ID", help="the message's id")],
    sent: Annotated[
        bool | None,
        typer.Option(
            "--sent/--not-sent", help="it did arrive (--sent), or it did not and stays unsent"
        ),
    ] = None,
) -> None:
    """Settle a failed or needs-review message as you found it: --sent or --not-sent."""
    if sent is None:
        raise typer.BadParameter("say --sent or --not-sent", param_hint="--sent/--not-sent")

    async def work(pulse: PlanPulse) -> str:
        assert sent is not None
        message = await resolve_message(pulse.sessions, message_id, sent=sent, now=pulse.clock())
        return f"outbox message {message_id} ({message.kind} to {message.recipient}) " + (
            "recorded as sent" if sent else "recorded as not sent; it will not be sent"
        )

    typer.echo(_run(work))


@app.command()
def reply(
    prompt_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="a prompt .eml from the outbox")
    ],
    text: Annotated[
        str, typer.Argument(help='the answer, e.g. "1.1-1 2 Done; sign-off next week"')
    ],
    sender: Annotated[
        str | None, typer.Option("--from", help="who answers (default: the prompt's recipient)")
    ] = None,
) -> None:
    """Local mode: answer a prompt as its lead would, by writing a reply into the inbox."""
    settings = _settings()
    message = write_local_reply(
        prompt_file.read_bytes(),
        text.replace("\\n", "\n"),
        inbox=settings.mail_dir / "inbox",
        sender=sender,
    )
    typer.echo(f"reply written to {message}; `pulse run --once` (or the running bot) takes it in")


@app.command()
def backup(
    file: Annotated[Path, typer.Argument(dir_okay=False, help="where to write the copy")],
) -> None:
    """Copy the SQLite database, consistently, while the bot runs (PostgreSQL: pg_dump)."""
    settings = _settings()
    database = sqlite_path(settings.database_url)
    if database is None:
        typer.echo(
            "error: the database is PostgreSQL: back it up with pg_dump "
            '(README, "Backups and restore")',
            err=True,
        )
        raise typer.Exit(1)
    from storage.backup import backup_sqlite

    try:
        size = backup_sqlite(database, file)
    except PulseError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backed up {database} to {file} ({size:,} bytes)")


slack_app = command_group(
    app, "slack", "Slack set-up: the app manifest to create the Slack app from."
)


class ManifestFormat(StrEnum):
    JSON = "json"
    YAML = "yaml"


@slack_app.command("manifest")
def slack_manifest(
    fmt: Annotated[
        ManifestFormat, typer.Option("--format", help="json or yaml")
    ] = ManifestFormat.JSON,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="the bot's public https address, for HTTP mode (default: Socket Mode)",
        ),
    ] = None,
) -> None:
    """Print the Slack app manifest: paste it into "Create New App → From a manifest"."""
    from handlers.slack.manifest import manifest

    if url is not None and not url.startswith("https://"):
        raise typer.BadParameter(f"not an https address: {url!r}", param_hint="--url")
    found = manifest(request_url=url)
    if fmt is ManifestFormat.YAML:
        import yaml

        typer.echo(yaml.safe_dump(found, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(found, indent=2, ensure_ascii=False))


teams_app = command_group(
    app, "teams", "Microsoft Teams set-up: the app package to upload for the bot."
)


@teams_app.command("package")
def teams_package(
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="the zip to write")
    ] = Path("plan-pulse-teams.zip"),
    version: Annotated[
        str, typer.Option("--version", help="the app's version; raise it for each upload")
    ] = "1.0.0",
) -> None:
    """Write the Teams app package (manifest and icons) for the bot of TEAMS_APP_ID, and say
    the messaging endpoint to set on the Azure Bot resource."""
    from handlers.teams.package import app_package, messaging_endpoint

    settings = _settings()
    app_id = (settings.teams_app_id or "").strip()
    if not app_id:
        typer.echo("error: set TEAMS_APP_ID (the bot's Entra ID app id) first", err=True)
        raise typer.Exit(2)
    base = settings.web_base_url
    if not base.startswith("https://"):
        typer.echo(
            f"error: PULSE_BASE_URL must be the bot's public https address, not {base!r}",
            err=True,
        )
        raise typer.Exit(2)
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise typer.BadParameter(f"not a version like 1.0.0: {version!r}", param_hint="--version")
    output.write_bytes(app_package(app_id=app_id, base_url=base, version=version))
    typer.echo(f"wrote {output}: upload it in the Teams admin centre (Manage apps, Upload)")
    typer.echo(f"messaging endpoint for the Azure Bot resource: {messaging_endpoint(base)}")


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


@people_app.command("draft")
def people_draft(
    plan_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    sheet: Annotated[str | None, typer.Option("--sheet", help="the XLSX sheet")] = None,
) -> None:
    """Write a people file (CSV) with one row per lead the plan names: fill in the emails."""
    draft = read_plan(plan_file, plan_key=None, sheet=sheet)
    errors = [p for p in draft.problems if p.severity == "error" and p.row is None]
    if not draft.actions and errors:
        for problem in errors:
            typer.echo(f"  {problem}", err=True)
        raise typer.Exit(1)
    cells = [
        cell if isinstance(cell, str) else "; ".join(cell)
        for action in draft.actions
        for cell in action.lead_cells
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["key", "name", "email"])
    for key, name in draft_people(cells, draft.priority_leads.values()):
        writer.writerow([key, name, ""])
    typer.echo(out.getvalue(), nl=False)


register_records(app, run=_run, day=_day, people=people_app)
register_pack(app, run=_run, day=_day)
register_live(app, run=_run, day=_day)


# Typer's click (its own copy in recent versions, the click package in older ones) raises
# these for usage errors: found from an exception Typer exports, whichever click it is.
_CLICK_ERROR: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def main() -> None:
    """`pulse`: usage errors are one line each on stderr (exit code 2), not a boxed panel."""
    tune_collector()
    try:
        code = app(standalone_mode=False)
    except _CLICK_ERROR as exc:
        context = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and context is not None:
            typer.echo(context.get_help())
            sys.exit(0)
        message = " ".join(str(exc.format_message()).split())  # type: ignore[attr-defined]
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        typer.echo(f"error: {message}{hint}", err=True)
        sys.exit(int(getattr(exc, "exit_code", 2)))
    except RuntimeError as exc:  # Typer's Abort: Ctrl-D at a prompt
        if type(exc).__name__ != "Abort":
            raise
        typer.echo("aborted", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
