"""`pulse answer --for` and `pulse web revoke` (issue 14): a coordinator records an answer
on a lead's behalf from the command line (source `coordinator`, the OS user kept as who
recorded it) and withdraws it (history kept); bad input is one line and changes nothing; on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_cli import import_small, pulse


def digest_item(tmp: Path, ref: str, db_url: str) -> dict[str, object] | None:
    out = pulse(tmp, "digest", "--plan", "small", "--format", "json", db_url=db_url)
    assert out.returncode == 0, out.stderr
    for digest in json.loads(out.stdout):
        if digest["network"] != "oversight":
            continue
        for section in ("overdue", "at_risk", "due_soon", "achieved"):
            for item in digest[section]:
                if item["ref"] == ref:
                    return dict(item)
    return None


def test_an_answer_for_a_lead_is_recorded_then_withdrawn(tmp_path: Path, db_url: str) -> None:
    """`pulse answer --plan small 2.3 1 --for AW` makes 2.3 achieved in the digest; withdrawing
    that answer puts it back as the lead left it; the history keeps all three."""
    assert import_small(tmp_path, db_url).returncode == 0
    done = pulse(
        tmp_path,
        "answer",
        "--plan",
        "small",
        "2.3",
        "1",
        "--note",
        "Report finished, said on the phone",
        "--for",
        "AW",
        db_url=db_url,
    )
    assert done.returncode == 0, done.stderr
    assert "recorded 2.3 1 for AW (source coordinator, by os:" in done.stdout
    item = digest_item(tmp_path, "2.3", db_url)
    assert item is not None
    assert item["rating"] == 1
    assert item["note"] == "Report finished, said on the phone"
    audit = pulse(tmp_path, "people", "export", "AW", "--output", tmp_path, db_url=db_url)
    assert audit.returncode == 0, audit.stderr
    exported = json.loads(next(tmp_path.glob("subject-access-*.json")).read_text())
    given = json.dumps(exported)
    assert "coordinator" in given
    update_id = _last_coordinator_update(exported)
    back = pulse(
        tmp_path,
        "answer",
        "--plan",
        "small",
        "2.3",
        "--withdraw",
        str(update_id),
        db_url=db_url,
    )
    assert back.returncode == 0, back.stderr
    item = digest_item(tmp_path, "2.3", db_url)
    assert item is not None
    assert item["rating"] == 2
    again = pulse(
        tmp_path, "answer", "--plan", "small", "2.3", "--withdraw", str(update_id), db_url=db_url
    )
    assert again.returncode == 1
    assert again.stderr.strip() == f"error: answer {update_id} was already changed or withdrawn"


def test_bad_answers_are_one_line_and_change_nothing(tmp_path: Path, db_url: str) -> None:
    """Someone who does not lead the milestone, a worse rating without a note, an unknown
    reference and a rating that is not one each get one line on stderr and record nothing."""
    assert import_small(tmp_path, db_url).returncode == 0
    cases = [
        (["2.3", "3", "--for", "PB"], "error: PB is not a lead of 2.3"),
        (["2.3", "4", "--for", "AW"], "note"),
        (["9.9", "1", "--for", "AW"], "error: 9.9 is not a milestone of small"),
        (["2.3", "seven", "--for", "AW"], "not a rating"),
    ]
    for args, expected in cases:
        out = pulse(tmp_path, "answer", "--plan", "small", *args, db_url=db_url)
        assert out.returncode != 0
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert expected in out.stderr
    item = digest_item(tmp_path, "2.3", db_url)
    assert item is not None
    assert item["rating"] == 2


def test_evidence_given_for_a_lead_goes_only_with_a_rating_of_1(
    tmp_path: Path, db_url: str
) -> None:
    """`pulse answer --plan small 2.3 1 --evidence TEXT --for AW` records the evidence with the
    answer, as the lead's subject access export shows; with a rating of 2 it is one line on
    stderr and records nothing."""
    assert import_small(tmp_path, db_url).returncode == 0
    base = ["answer", "--plan", "small", "2.3"]
    evidence = ["--evidence", "Exit interviews show staff stay longer", "--for", "AW"]
    refused = pulse(tmp_path, *base, "2", "--note", "Nearly", *evidence, db_url=db_url)
    assert refused.returncode == 1
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "rating of 1" in refused.stderr
    done = pulse(tmp_path, *base, "1", *evidence, db_url=db_url)
    assert done.returncode == 0, done.stderr
    assert "recorded 2.3 1 with evidence for AW" in done.stdout
    audit = pulse(tmp_path, "people", "export", "AW", "--output", tmp_path, db_url=db_url)
    assert audit.returncode == 0, audit.stderr
    exported = json.loads(next(tmp_path.glob("subject-access-*.json")).read_text())
    given = [
        (a["rating"], a["evidence"])
        for a in exported["answers_given"] + exported["answers_given_for_them"]
        if a["source"] == "coordinator"
    ]
    assert given == [(1, "Exit interviews show staff stay longer")]


def test_web_revoke_says_how_many_links_it_revoked(tmp_path: Path, db_url: str) -> None:
    """`pulse web revoke ADDRESS` revokes that coordinator's links (none yet here) and says so."""
    assert import_small(tmp_path, db_url).returncode == 0
    out = pulse(tmp_path, "web", "revoke", "wf.lead@council.example", db_url=db_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "revoked 0 live-view links"


def _last_coordinator_update(exported: dict[str, object]) -> int:
    found = [
        a
        for a in _walk(exported)
        if isinstance(a, dict) and a.get("source") == "coordinator" and "id" in a
    ]
    assert found, "no coordinator answer in the export"
    return int(found[-1]["id"])


def _walk(value: object) -> list[object]:
    out: list[object] = [value]
    if isinstance(value, dict):
        for v in value.values():
            out += _walk(v)
    elif isinstance(value, list):
        for v in value:
            out += _walk(v)
    return out
