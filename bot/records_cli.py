"""The personal-data commands of `pulse`: `people export`, `people forget`, `people set`,
`actions reassign`, `retention` and `audit`. Registered on the main app by `bot.cli`, whose
runner (settings, logging, errors as one line each) they share."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

from bot.cli_groups import command_group
from bot.services.records import Records, os_actor
from storage.people_admin import PersonChanges

if TYPE_CHECKING:
    from bot.app import PlanPulse
    from storage.importer import ImportReport

T = TypeVar("T")


class RunCommand(Protocol):
    """How a registered command runs its work with the application (`bot.cli._run`)."""

    def __call__(
        self,
        work: Callable[[PlanPulse], Awaitable[T]],
        *,
        migrate: bool = ...,
        clock: datetime | None = ...,
    ) -> T: ...


def register_records(
    app: typer.Typer,
    *,
    run: RunCommand,
    day: Callable[[str | None, str], date | None],
    people: typer.Typer,
) -> None:
    """Add the commands to `app`; the person ones to `people` (`pulse people`)."""

    @people.command("export")
    def export_person(
        key: Annotated[str, typer.Argument(help="the person's key")],
        output: Annotated[
            Path | None,
            typer.Option("--output", "-o", file_okay=False, help="folder to write into"),
        ] = None,
    ) -> None:
        """Write everything stored about a person (subject access) as JSON and HTML."""

        async def work(pulse: PlanPulse) -> str:
            paths = await Records(pulse).export_person(key, output=output, actor=os_actor())
            return "\n".join(f"wrote {p}" for p in paths)

        typer.echo(run(work))

    @people.command("forget")
    def forget_person(
        key: Annotated[str | None, typer.Argument(help="the person's key")] = None,
        reassign_to: Annotated[
            str | None,
            typer.Option("--reassign-to", help="who leads their actions from now on"),
        ] = None,
        yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
        reapply: Annotated[
            bool,
            typer.Option("--reapply", help="forget again whoever was forgotten before a restore"),
        ] = False,
    ) -> None:
        """Anonymise a person for good: name, addresses and messages erased, answers kept
        as "former lead N"."""
        if reapply:
            if key is not None or reassign_to is not None:
                raise typer.BadParameter("--reapply takes no KEY or --reassign-to")

            async def again(pulse: PlanPulse) -> str:
                redone = await Records(pulse).reapply(actor=os_actor())
                if not redone:
                    return "every recorded erasure is in place; nothing to re-apply"
                return "\n".join(f"re-applied erasure of {e.replacement}" for e in redone)

            typer.echo(run(again))
            return
        if key is None:
            raise typer.BadParameter("give the person's KEY (or --reapply)")
        if not yes and not typer.confirm(
            f"Forget {key} for good? Their name, addresses and the messages to and from them "
            "are erased; their answers stay as 'former lead N'. This cannot be undone.",
            default=False,
        ):
            typer.echo("nothing was changed", err=True)
            raise typer.Exit(1)

        async def work(pulse: PlanPulse) -> str:
            done = await Records(pulse).forget_person(
                key, reassign_to=reassign_to, actor=os_actor()
            )
            moved = f", {done.actions_reassigned} actions reassigned" if done.reassigned_to else ""
            return (
                f"forgot {key}: now {done.replacement}; {done.answers_kept} answers kept"
                f"{moved}, {done.messages_dropped} messages and {done.mail_dropped} inbound "
                f"mails dropped, {done.texts_rewritten} stored texts rewritten"
            )

        typer.echo(run(work))

    @people.command("set")
    def set_person(
        key: Annotated[str, typer.Argument(help="the person's key")],
        name: Annotated[str | None, typer.Option("--name", help="their name")] = None,
        email: Annotated[str | None, typer.Option("--email", help="the address prompted")] = None,
        slack: Annotated[
            str | None, typer.Option("--slack", help='Slack member id (U...); "" clears it')
        ] = None,
        prefers: Annotated[
            str | None,
            typer.Option("--prefers", help="email, slack or teams", metavar="email|slack|teams"),
        ] = None,
        timezone: Annotated[
            str | None, typer.Option("--timezone", help='e.g. Europe/London; "" clears it')
        ] = None,
    ) -> None:
        """Change a person's name, address, Slack id, channel or timezone without a
        re-import (a later people file import sets them again); audited."""
        changes = PersonChanges(
            name=name, email=email, slack_user_id=slack, prefers=prefers, timezone=timezone
        )

        async def work(pulse: PlanPulse) -> str:
            person, fields = await Records(pulse).set_person(key, changes, actor=os_actor())
            if not fields:
                return f"{person}: nothing changed"
            return f"{person}: changed {', '.join(fields)}"

        typer.echo(run(work))

    actions = command_group(app, "actions", "Actions: who leads them, changed without a re-import.")

    @actions.command("reassign")
    def reassign(
        from_key: Annotated[str, typer.Option("--from", help="the lead whose actions move")],
        to_key: Annotated[str, typer.Option("--to", help="who leads them from now on")],
        plan: Annotated[
            str | None, typer.Option("--plan", help="only this plan's actions (default: all)")
        ] = None,
    ) -> None:
        """Move every live action one person leads to another; audited."""

        async def work(pulse: PlanPulse) -> str:
            done = await Records(pulse).reassign(
                from_key=from_key, to_key=to_key, plan_key=plan, actor=os_actor()
            )
            return (
                f"moved {len(done.actions)} action(s) from {done.from_key} to {done.to_key}: "
                + ", ".join(done.actions)
            )

        typer.echo(run(work))

    @app.command()
    def retention(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="only show what would be dropped")
        ] = False,
    ) -> None:
        """Drop raw inbound mail and delivered message bodies older than the retention
        settings (RETAIN_RAW_MAIL_DAYS, RETAIN_SENT_DAYS); `pulse run` does it too."""

        async def work(pulse: PlanPulse) -> str:
            records = Records(pulse)
            settings = pulse.settings
            kept = (
                f"(raw mail kept {settings.retain_raw_mail_days or 'forever'} days, "
                f"delivered bodies {settings.retain_sent_days or 'forever'} days)"
            )
            if dry_run:
                due = await records.retention_due(pulse.clock())
                return (
                    f"would drop {due.raw_mail} raw inbound messages and {due.sent_bodies} "
                    f"delivered message bodies {kept}"
                )
            raw = sent = 0
            while True:
                swept = await records.sweep(pulse.clock(), actor=os_actor())
                raw, sent = raw + swept.raw_mail, sent + swept.sent_bodies
                if swept.finished:
                    break
            return f"dropped {raw} raw inbound messages and {sent} delivered message bodies {kept}"

        typer.echo(run(work))

    @app.command()
    def audit(
        since: Annotated[str | None, typer.Option("--since", help="from this day on")] = None,
        person: Annotated[
            str | None, typer.Option("--person", help="only entries about or by this person")
        ] = None,
    ) -> None:
        """What admins and leads changed other than answers: imports, exports, absences and
        delegates, retention sweeps, subject-access exports and erasures."""
        first = day(since, "--since")

        async def work(pulse: PlanPulse) -> str:
            moment = datetime.combine(first, time(0), UTC) if first else None
            entries, keys = await Records(pulse).audit_entries(since=moment, person_key=person)
            if not entries:
                return "no audit entries"
            rows = [("AT", "ACTION", "BY", "CHANNEL", "PERSON", "PLAN", "DETAILS")]
            for e in entries:
                by = e.actor
                if by.startswith("person:"):
                    by = f"#{by[7:]} {keys.get(int(by[7:]), '')}".rstrip()
                who = f"#{e.person_id} {keys.get(e.person_id, '')}".rstrip() if e.person_id else ""
                rows.append(
                    (
                        e.at.strftime("%Y-%m-%d %H:%M:%S"),
                        e.action,
                        by,
                        e.channel,
                        who,
                        e.plan_key or "",
                        json.dumps(e.details, ensure_ascii=False, sort_keys=True),
                    )
                )
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            return "\n".join(
                "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
            )

        typer.echo(run(work))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


async def audit_import(
    pulse: PlanPulse, report: ImportReport, files: dict[str, Path | None]
) -> None:
    """Record an import: each file's name and SHA-256, the counts, and who ran it."""
    counts: dict[str, Any] = {
        k: v for k, v in asdict(report).items() if isinstance(v, int | bool) and k != "dry_run"
    }
    counts["warnings"] = len(report.warnings)
    given = {role: path for role, path in files.items() if path is not None}
    await Records(pulse).audit(
        "import",
        actor=os_actor(),
        channel="cli",
        plan_key=report.plan_key,
        details={
            "files": {role: {"name": p.name, "sha256": sha256_of(p)} for role, p in given.items()},
            "counts": counts,
        },
    )


async def audit_plan_export(pulse: PlanPulse, plan_key: str, path: Path, fmt: str) -> None:
    """Record a plan export: which plan, the file written, who ran it."""
    await Records(pulse).audit(
        "export",
        actor=os_actor(),
        channel="cli",
        plan_key=plan_key,
        details={"file": path.name, "format": fmt},
    )
