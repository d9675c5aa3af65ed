"""`pulse pack`: the board pack of a plan (or one network) since the last board, as a web
page or a Word document. Registered on the main app by `bot.cli`, whose runner (settings,
logging, errors as one line each) it shares."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bot.services.packs import board_pack
from digests.pack_html import render_pack_html
from handlers.files.pack_docx import write_pack_docx

if TYPE_CHECKING:
    from bot.app import PlanPulse


class PackFormat(StrEnum):
    HTML = "html"
    DOCX = "docx"


def register_pack(
    app: typer.Typer,
    *,
    run: Callable[..., Any],
    day: Callable[[str | None, str], date | None],
) -> None:
    """Add `pulse pack` to `app`."""

    @app.command("pack")
    def pack(
        plan: Annotated[str, typer.Option("--plan", help="the plan's key")],
        since: Annotated[str, typer.Option("--since", help="the day of the last board")],
        fmt: Annotated[PackFormat, typer.Option("--format", help="html or docx")],
        network: Annotated[str | None, typer.Option("--network", help="one network's key")] = None,
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="the pack's day (default today)")
        ] = None,
        output: Annotated[
            Path | None, typer.Option("--output", "-o", dir_okay=False, help="file to write")
        ] = None,
    ) -> None:
        """Write the board pack: what changed since the last board, the exceptions, what
        was achieved, response rates and the rating mix per priority with its trend."""
        start = day(since, "--since")
        assert start is not None
        end = day(as_of, "--as-of")

        async def work(pulse: PlanPulse) -> str:
            built = await board_pack(
                pulse.sessions, plan, since=start, as_of=end, now=pulse.clock(), network=network
            )
            path = output
            if path is None:
                folder = pulse.settings.data_dir / "packs"
                folder.mkdir(parents=True, exist_ok=True)
                scope = f"-{network}" if network else ""
                path = folder / f"{plan}{scope}-{built.as_of.isoformat()}.{fmt.value}"
            if fmt is PackFormat.HTML:
                await asyncio.to_thread(path.write_text, render_pack_html(built), "utf-8")
            else:
                await asyncio.to_thread(write_pack_docx, built, path)
            return f"wrote the board pack of {plan} to {path}"

        typer.echo(run(work))
