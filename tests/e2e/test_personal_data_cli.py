"""The personal-data commands as an admin runs them: import warnings about a child's details,
`pulse audit`, `pulse people export`, `pulse people forget` and `pulse retention`."""

from __future__ import annotations

import getpass
import hashlib
import subprocess
from pathlib import Path

from tests.e2e.test_cli import PLANS, PULSE, environment, pulse


def _plan_with_a_case_number(tmp: Path) -> tuple[Path, Path]:
    plan = tmp / "plan.csv"
    plan.write_text(
        (PLANS / "small-plan.csv")
        .read_text()
        .replace("Drafting with partners", "Drafting; see case LCS-123456")
    )
    settings = tmp / "settings.yaml"
    settings.write_text("plan:\n  case_numbers: 'LCS-\\d{6}'\n")
    return plan, settings


def test_import_warns_about_a_childs_details_and_is_audited(tmp_path: Path) -> None:
    """An imported note in the plan's case-number pattern is imported with a warning that
    never repeats the number; `pulse audit` lists the import with the file's SHA-256 and
    the user who ran it."""
    plan, settings = _plan_with_a_case_number(tmp_path)
    done = pulse(
        tmp_path,
        "import",
        plan,
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
        "--settings",
        settings,
    )
    assert done.returncode == 0, done.stderr
    assert "child's details (case number)" in done.stdout
    assert "LCS-123456" not in done.stdout
    audit = pulse(tmp_path, "audit")
    assert audit.returncode == 0, audit.stderr
    assert "import" in audit.stdout
    assert hashlib.sha256(plan.read_bytes()).hexdigest() in audit.stdout
    assert f"os:{getpass.getuser()}" in audit.stdout


def test_export_then_forget_a_person_from_the_command_line(tmp_path: Path) -> None:
    """An admin exports Alex's data, is asked to confirm forgetting him (no changes nothing),
    must reassign his actions, then forgets him; the audit log shows both by id only."""
    plan, _ = _plan_with_a_case_number(tmp_path)
    pulse(
        tmp_path,
        "import",
        plan,
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
    )
    exported = pulse(tmp_path, "people", "export", "AW", "--output", tmp_path / "sar")
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.suffix for p in (tmp_path / "sar").iterdir()) == [".html", ".json"]

    asked = subprocess.run(
        [str(PULSE), "people", "forget", "AW"],
        cwd=tmp_path,
        env=environment(tmp_path),
        input="n\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert asked.returncode == 1
    assert "nothing was changed" in asked.stderr
    refused = pulse(tmp_path, "people", "forget", "AW", "--yes")
    assert refused.returncode == 1
    assert "--reassign-to" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1

    forgot = pulse(tmp_path, "people", "forget", "AW", "--reassign-to", "GR", "--yes")
    assert forgot.returncode == 0, forgot.stderr
    assert "former lead" in forgot.stdout
    audit = pulse(tmp_path, "audit")
    assert "subject_access_export" in audit.stdout
    assert "erasure" in audit.stdout
    assert "Alex Walker" not in audit.stdout
    again = pulse(tmp_path, "people", "forget", "--reapply")
    assert "nothing to re-apply" in again.stdout
    due = pulse(tmp_path, "retention", "--dry-run")
    assert due.returncode == 0, due.stderr
    assert "would drop 0 raw inbound messages" in due.stdout


def test_people_set_and_actions_reassign_from_the_command_line(tmp_path: Path) -> None:
    """An admin changes Alex's address and moves his actions to Morgan without a
    re-import; an unknown key is one line listing the valid ones; both show in the audit."""
    plan, _ = _plan_with_a_case_number(tmp_path)
    pulse(
        tmp_path,
        "import",
        plan,
        "--people",
        PLANS / "small-people.csv",
        "--networks",
        PLANS / "small-networks.csv",
        "--plan",
        "small",
    )
    changed = pulse(tmp_path, "people", "set", "AW", "--email", "alex.w@council.example")
    assert changed.returncode == 0, changed.stderr
    assert changed.stdout.strip() == "AW: changed email"
    unknown = pulse(tmp_path, "actions", "reassign", "--from", "AW", "--to", "ZZ")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == [
        "error: the store has no person 'ZZ'; known: AW, DC, GR, MC, PB, SMu"
    ]
    moved = pulse(tmp_path, "actions", "reassign", "--from", "AW", "--to", "MC", "--plan", "small")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == "moved 2 action(s) from AW to MC: small 1.1, small 2.3"
    audit = pulse(tmp_path, "audit", "--person", "AW")
    assert "person_changed" in audit.stdout
    assert "actions_reassigned" in audit.stdout
    assert "alex.w@council.example" not in audit.stdout
    helped = pulse(tmp_path, "actions", "reassign", "--help")
    assert "--from" in helped.stdout
    assert "╭" not in helped.stdout
