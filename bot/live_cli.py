"""The coordinators' commands of `pulse`: `answer --for` (an answer recorded on a lead's
behalf, after a phone call or a meeting), `answer --withdraw` and `web revoke` (a
coordinator's live-view links). Registered on the main app by `bot.cli`, whose runner
(settings, logging, errors as one line each) they share."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING, Annotated

import typer

from bot.cli_groups import command_group
from bot.domain.errors import PulseError
from bot.domain.ratings import rating_from_text
from bot.domain.replies import NOTE_LIMIT, ReplyLine
from bot.records_cli import RunCommand
from bot.services.answers import OnBehalf, record_on_behalf, withdraw
from bot.services.live_view import revoke_view_links
from bot.services.records import os_actor

if TYPE_CHECKING:
    from bot.app import PlanPulse


class Refused(PulseError):
    """An answer the command could not record: why, in one line."""


def register_live(
    app: typer.Typer, *, run: RunCommand, day: Callable[[str | None, str], date | None]
) -> None:
    """Add `answer` and `web revoke` to `app`."""
    web_app = command_group(app, "web", "The web pages: coordinators' live-view links.")

    @app.command("answer")
    def answer(
        plan: Annotated[str, typer.Option("--plan", help="the plan's key")],
        ref: Annotated[str, typer.Argument(help="the milestone's reference")],
        rating: Annotated[
            str | None, typer.Argument(help="1-4 or the scale's words ('in progress')")
        ] = None,
        for_person: Annotated[
            str | None, typer.Option("--for", help="the lead's key: whom the answer is for")
        ] = None,
        note: Annotated[str | None, typer.Option("--note", help="what the lead said")] = None,
        revised: Annotated[
            str | None, typer.Option("--revised", help="a revised date the lead gave")
        ] = None,
        support: Annotated[
            bool, typer.Option("--support", help="the lead asked for support")
        ] = False,
        evidence: Annotated[
            str | None,
            typer.Option(
                "--evidence",
                help="with a rating of 1: what changed for children and families (a sentence, "
                "or a link to the evidence)",
            ),
        ] = None,
        withdraw_id: Annotated[
            int | None,
            typer.Option("--withdraw", help="take back the answer with this id instead"),
        ] = None,
    ) -> None:
        """Record an answer on a lead's behalf (source `coordinator`, who recorded it kept),
        or withdraw a mis-recorded one with a correcting update (history kept)."""
        actor = os_actor()
        if withdraw_id is not None:
            if rating is not None or for_person is not None:
                raise typer.BadParameter("--withdraw takes no RATING or --for")

            async def take_back(pulse: PlanPulse) -> str:
                async with pulse.sessions() as session, session.begin():
                    why = await withdraw(
                        session,
                        plan_key=plan,
                        update_id=withdraw_id,
                        recorded_by=actor,
                        now=pulse.clock(),
                    )
                if why is not None:
                    raise Refused(why)
                return f"withdrew answer {withdraw_id} of {plan}"

            typer.echo(run(take_back))
            return
        if rating is None or for_person is None:
            raise typer.BadParameter("give RATING and --for PERSON (or --withdraw ID)")
        value = rating_from_text(rating)
        if value is None:
            raise typer.BadParameter(f"not a rating: {rating!r} (1-4 or the scale's words)")
        revised_due = day(revised, "--revised") if revised else None
        given = evidence.strip() if evidence else None
        if given is not None and len(given) > NOTE_LIMIT:
            raise typer.BadParameter(
                f"--evidence is {len(given)} characters; the limit is {NOTE_LIMIT}: give a link"
            )
        line = ReplyLine(
            ref, value, note.strip() if note else None, revised_due, support, 1, evidence=given
        )

        async def record(pulse: PlanPulse) -> str:
            async with pulse.sessions() as session, session.begin():
                result = await record_on_behalf(
                    session,
                    OnBehalf(
                        plan,
                        line,
                        for_person,
                        actor,
                        pulse.clock(),
                        f"cli:{secrets.token_urlsafe(12)}",
                    ),
                )
            if result.line is None:
                raise Refused(result.reason)
            with_evidence = " with evidence" if result.line.evidence else ""
            return (
                f"recorded {ref} {value}{with_evidence} for {for_person} "
                f"(source coordinator, by {actor})"
            )

        typer.echo(run(record))

    @web_app.command("revoke")
    def revoke(
        email: Annotated[str, typer.Argument(help="the coordinator's address")],
        network: Annotated[
            str | None, typer.Option("--network", help="only their links to this network")
        ] = None,
    ) -> None:
        """Revoke a coordinator's live-view links (audited)."""

        async def work(pulse: PlanPulse) -> int:
            async with pulse.sessions() as session, session.begin():
                return await revoke_view_links(
                    session, email, network_key=network, now=pulse.clock(), actor=os_actor()
                )

        revoked = run(work)
        typer.echo(f"revoked {revoked} live-view link{'' if revoked == 1 else 's'}")
