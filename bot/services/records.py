"""Records-grade handling of personal data: retention sweeps, subject-access exports,
erasures (and their re-application after a restore) and the audit log around them.

Each erasure is also appended to `erasures.jsonl` in the data folder (the person's internal
id, whom their actions went to, when; never a name). A backup restored from before an
erasure brings the person back; `pulse people forget --reapply` reads that file and the
audit log and forgets again everyone they name who is not forgotten in the store.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.messages.subject_access import subject_access_page
from storage.people_admin import PersonChanges, Reassigned, reassign_actions, set_person
from storage.personal_data import (
    AuditEntry,
    AuditLog,
    Erasure,
    Retention,
    RetentionDue,
    forget,
    forgotten,
    person_by_id,
    person_by_key,
    subject_access,
    truncate_sqlite_wal,
)

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.settings import Settings
    from storage.db import Engine, Sessions

log = logging.getLogger(__name__)

LEDGER = "erasures.jsonl"
# A retention sweep is background work: a hundred messages per short transaction, then a
# pause that leaves the event loop, both cores and SQLite's write lock to the digests and
# clicks beside it (50 ms: a batch takes a few, so the sweep uses a small share of the time).
# At most 25 batches a sweep keeps each scheduler tick short; a year of mail goes in minutes.
SWEEP_BATCH = 100
SWEEP_BATCHES = 25
SWEEP_PAUSE = 0.05


def os_actor() -> str:
    """Who runs a command: the operating-system user."""
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return "os:unknown"


@dataclass(frozen=True, slots=True)
class Swept:
    """What one retention sweep dropped."""

    raw_mail: int
    sent_bodies: int
    batches: int
    finished: bool  # False when it stopped at its batch budget with more to go


class App(Protocol):
    """What `Records` needs of the application (`bot.app.PlanPulse` hands itself in)."""

    settings: Settings
    clock: Clock
    engine: Engine
    sessions: Sessions


class Records:
    """Retention, subject access, erasure and the audit log, for one application."""

    def __init__(self, pulse: App) -> None:
        self.pulse = pulse
        self.sessions = pulse.sessions

    # -------------------------------------------------------------------- audit

    async def audit(
        self,
        action: str,
        *,
        actor: str,
        channel: str,
        person_id: int | None = None,
        plan_key: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit entry, in its own transaction."""
        async with self.sessions() as session, session.begin():
            await AuditLog(session).append(
                at=self.pulse.clock(),
                action=action,
                actor=actor,
                channel=channel,
                person_id=person_id,
                plan_key=plan_key,
                details=details,
            )

    async def audit_entries(
        self, *, since: datetime | None = None, person_key: str | None = None
    ) -> tuple[list[AuditEntry], dict[int, str]]:
        """The entries, and the current key of every person they name by id."""
        async with self.sessions() as session:
            person_id = (await person_by_key(session, person_key)).id if person_key else None
            entries = await AuditLog(session).entries(since=since, person_id=person_id)
            ids = {e.person_id for e in entries if e.person_id is not None}
            ids |= {int(e.actor[7:]) for e in entries if e.actor.startswith("person:")}
            keys = {}
            for pid in ids:
                row = await person_by_id(session, pid)
                if row is not None:
                    keys[pid] = row.key
        return entries, keys

    # ------------------------------------------------------------------ people

    async def set_person(
        self, key: str, changes: PersonChanges, *, actor: str
    ) -> tuple[str, list[str]]:
        """Change a person's details without a re-import, with its audit entry."""
        async with self.sessions() as session, session.begin():
            return await set_person(session, key, changes, now=self.pulse.clock(), actor=actor)

    async def reassign(
        self, *, from_key: str, to_key: str, plan_key: str | None, actor: str
    ) -> Reassigned:
        """Move one lead's live actions to another without a re-import, audited."""
        async with self.sessions() as session, session.begin():
            return await reassign_actions(
                session,
                from_key=from_key,
                to_key=to_key,
                plan_key=plan_key,
                now=self.pulse.clock(),
                actor=actor,
            )

    # ---------------------------------------------------------------- retention

    def _cutoffs(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        settings = self.pulse.settings
        raw_days, sent_days = settings.retain_raw_mail_days, settings.retain_sent_days
        return (
            now - timedelta(days=raw_days) if raw_days else None,
            now - timedelta(days=sent_days) if sent_days else None,
        )

    async def retention_due(self, now: datetime) -> RetentionDue:
        raw_before, sent_before = self._cutoffs(now)
        async with self.sessions() as session:
            return await Retention(session).due(raw_before=raw_before, sent_before=sent_before)

    async def sweep(
        self,
        now: datetime,
        *,
        batch: int = SWEEP_BATCH,
        max_batches: int = SWEEP_BATCHES,
        pause: float = SWEEP_PAUSE,
        actor: str = "scheduler",
    ) -> Swept:
        """Drop what retention says has gone, `batch` rows per short transaction, at most
        `max_batches` of them (the next sweep goes on), `pause` seconds apart so that a
        digest being built, or a click waiting for SQLite's lock, is never held up behind
        it."""
        raw_before, sent_before = self._cutoffs(now)
        dropped = {"raw": 0, "sent": 0}
        batches = 0
        finished = True
        for kind, before in (("raw", raw_before), ("sent", sent_before)):
            if before is None:
                continue
            while True:
                if batches >= max_batches:
                    finished = False
                    break
                async with self.sessions() as session, session.begin():
                    retention = Retention(session)
                    if kind == "raw":
                        done = await retention.drop_raw_mail(before=before, now=now, limit=batch)
                    else:
                        done = await retention.drop_sent_bodies(before=before, now=now, limit=batch)
                batches += 1
                dropped[kind] += done
                if done < batch:
                    break
                await asyncio.sleep(pause)
        if dropped["raw"] or dropped["sent"]:
            await self.audit(
                "retention",
                actor=actor,
                channel="scheduler" if actor == "scheduler" else "cli",
                details={
                    "raw_mail_dropped": dropped["raw"],
                    "sent_bodies_dropped": dropped["sent"],
                    "raw_mail_before": raw_before.isoformat() if raw_before else None,
                    "sent_before": sent_before.isoformat() if sent_before else None,
                },
            )
            log.info(
                "retention: dropped %d raw messages and %d sent bodies in %d batches",
                dropped["raw"],
                dropped["sent"],
                batches,
            )
        return Swept(dropped["raw"], dropped["sent"], batches, finished)

    # ----------------------------------------------------------- subject access

    async def export_person(self, key: str, *, output: Path | None, actor: str) -> list[Path]:
        """Write everything stored about a person as JSON and as an HTML page."""
        now = self.pulse.clock()
        async with self.sessions() as session:
            person = await person_by_key(session, key)
            data = await subject_access(session, person)
        folder = output or self.pulse.settings.data_dir / "exports"
        stem = f"subject-access-{data['person']['id']}-{now.date().isoformat()}"
        html = subject_access_page(data, exported_at=now.isoformat(timespec="seconds"))
        json_path, html_path = folder / f"{stem}.json", folder / f"{stem}.html"

        def write() -> None:
            folder.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(data, indent=2, ensure_ascii=False), "utf-8")
            html_path.write_text(html, "utf-8")

        await asyncio.to_thread(write)
        await self.audit(
            "subject_access_export",
            actor=actor,
            channel="cli",
            person_id=data["person"]["id"],
            details={
                "answers": len(data["answers_given"]) + len(data["answers_given_for_them"]),
                "mail": len(data["mail_received"]),
            },
        )
        return [json_path, html_path]

    # ------------------------------------------------------------------ erasure

    async def forget_person(self, key: str, *, reassign_to: str | None, actor: str) -> Erasure:
        """Anonymise one person (storage/personal_data.forget) in one transaction, with its
        audit entry; then note it in the erasure ledger."""
        now = self.pulse.clock()
        async with self.sessions() as session, session.begin():
            person = await person_by_key(session, key)
            target = await person_by_key(session, reassign_to) if reassign_to else None
            erasure = await forget(session, person, now=now, reassign_to=target)
            await AuditLog(session).append(
                at=now,
                action="erasure",
                actor=actor,
                channel="cli",
                person_id=erasure.person_id,
                details=erasure.to_json(),
            )
        await self._after_erasure(erasure, now)
        return erasure

    async def reapply(self, *, actor: str) -> list[Erasure]:
        """Forget again everyone the ledger or the audit log says was forgotten but whom
        the store holds again (a backup from before was restored)."""
        wanted: dict[int, int | None] = {}
        ledger = self.pulse.settings.data_dir / LEDGER
        if ledger.exists():
            for line in ledger.read_text("utf-8").splitlines():
                if line.strip():
                    entry = json.loads(line)
                    wanted[int(entry["person_id"])] = entry.get("reassigned_to")
        async with self.sessions() as session:
            for entry in await AuditLog(session).entries(action="erasure"):
                if entry.person_id is not None:
                    wanted.setdefault(entry.person_id, entry.details.get("reassigned_to"))
            done = await forgotten(session)
        redone = []
        now = self.pulse.clock()
        for person_id, target_id in sorted(wanted.items()):
            if person_id in done:
                continue
            async with self.sessions() as session, session.begin():
                person = await person_by_id(session, person_id)
                if person is None:  # the backup is from before they were added
                    continue
                target = await person_by_id(session, target_id) if target_id else None
                erasure = await forget(session, person, now=now, reassign_to=target)
                await AuditLog(session).append(
                    at=now,
                    action="erasure",
                    actor=actor,
                    channel="cli",
                    person_id=person_id,
                    details={**erasure.to_json(), "reapplied": True},
                )
            await self._after_erasure(erasure, now)
            redone.append(erasure)
        return redone

    async def _after_erasure(self, erasure: Erasure, now: datetime) -> None:
        ledger = self.pulse.settings.data_dir / LEDGER
        entry = {
            "person_id": erasure.person_id,
            "reassigned_to": erasure.reassigned_to,
            "at": now.isoformat(),
        }

        def append() -> None:
            ledger.parent.mkdir(parents=True, exist_ok=True)
            known = ledger.read_text("utf-8") if ledger.exists() else ""
            if f'"person_id": {erasure.person_id},' not in known:
                with ledger.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(entry) + "\n")

        await asyncio.to_thread(append)
        # With secure_delete the file's freed pages are zeroed; SQLite's write-ahead log
        # still holds the old pages until it is checkpointed and truncated.
        await truncate_sqlite_wal(self.pulse.engine)
