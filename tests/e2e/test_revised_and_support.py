"""A lead's revised date and support ask, given by email reply, reach everyone who reads the
plan: `pulse status`, the digest, the lead's next prompt and the board's export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.e2e.test_cli import import_small, pulse
from tests.e2e.test_run import eml


def _prompt_to(outbox: Path, address: str, kind: str = "prompt") -> Path:
    return next(
        p
        for p in sorted(outbox.glob(f"*-{kind}.eml"))
        if address in p.read_text(encoding="ascii", errors="replace")
    )


def test_a_revised_date_and_support_ask_reach_status_digest_next_prompt_and_export(
    tmp_path: Path,
) -> None:
    """Priya answers 1.2-1 with a revised date and a support ask by email; status shows both
    columns, the digest JSON carries them, next week's prompt shows them with her last
    rating, and the export has them in columns that re-import without a change."""
    assert import_small(tmp_path).returncode == 0
    monday = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T09:05:00Z")
    assert monday.returncode == 0, monday.stderr
    outbox = tmp_path / "var" / "mail" / "outbox"
    answer = "1.2-1 3 Needs analysis started - revised date 31/01/27 - need support"
    replied = pulse(tmp_path, "reply", _prompt_to(outbox, "priya.bains"), answer)
    assert replied.returncode == 0, replied.stderr
    taken = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T15:00:00Z")
    assert "recorded 1 answers" in taken.stdout, taken.stdout + taken.stderr

    status = pulse(tmp_path, "status", "--plan", "small", "--as-of", "2026-11-27")
    header, *lines = status.stdout.splitlines()
    assert header.split()[:6] == ["REF", "STATUS", "DUE", "REVISED", "RATING", "SUPPORT"]
    row = next(line.split() for line in lines if line.startswith("1.2-1 "))
    assert row[1:6] == ["at_risk", "2026-11-30", "2027-01-31", "3", "needed"]
    other = next(line.split() for line in lines if line.startswith("1.2-2 "))
    assert other[3] == other[5] == "-"

    digest = pulse(
        tmp_path, "digest", "--plan", "small", "--network", "workforce", "--as-of", "2026-11-27"
    )
    body = json.loads(digest.stdout)
    (asked,) = [i for i in body["at_risk"] if i["ref"] == "1.2-1"]
    assert asked["revised_due"] == "2027-01-31"
    assert asked["needs_support"] is True
    assert [i["ref"] for i in body["needs_support"]] == ["1.2-1"]
    assert all(i["revised_due"] is None for i in body["at_risk"] if i["ref"] != "1.2-1")
    markdown = pulse(
        tmp_path, "digest", "--plan", "small", "--network", "workforce", "--as-of",
        "2026-11-27", "--format", "md",
    )  # fmt: skip
    assert "revised date 31 Jan 2027" in markdown.stdout

    next_week = pulse(tmp_path, "run", "--once", "--now", "2026-11-30T09:05:00Z")
    assert next_week.returncode == 0, next_week.stderr
    prompts = sorted(outbox.glob("*-prompt.eml"))
    latest = [p for p in prompts if "priya.bains" in p.read_text(errors="replace")][-1]
    text = eml(latest).get_body(preferencelist=("plain",))
    assert text is not None
    assert "last answer: revised date 31 Jan 2027 · support asked" in text.get_content()

    exported = tmp_path / "board.csv"
    out = pulse(tmp_path, "export", "--plan", "small", "--format", "csv", "--output", exported)
    assert out.returncode == 0, out.stderr
    with exported.open(encoding="utf-8-sig", newline="") as handle:
        table = {r["Ref"] + "/" + r["Milestones"]: r for r in csv.DictReader(handle)}
    (first,) = [r for key, r in table.items() if key.startswith("1.2/Training needs")]
    assert (first["Revised date"], first["Needs support"]) == ("31/01/2027", "yes")
    again = pulse(tmp_path, "import", exported, "--plan", "small")
    assert again.returncode == 0, again.stderr
    assert "not recognised" not in again.stdout + again.stderr
    after = pulse(tmp_path, "status", "--plan", "small", "--as-of", "2026-11-27")
    assert after.stdout == status.stdout
