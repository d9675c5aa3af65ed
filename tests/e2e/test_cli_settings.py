"""`pulse import --settings`: a CSV plan's settings, as an admin gives them (issue 10.5)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.test_cli import pulse

PLAN = (
    "Priority,Ref,Key actions,Lead(s),Timescales\n"
    "1 Practice,1.1,Budget agreed,JB,Q1 2027\n"
    "1 Practice,1.2,Placements reviewed,JB,Spring 2027\n"
)


def _due(status: str, ref: str) -> str:
    line = next(line for line in status.splitlines() if line.startswith(f"{ref} "))
    return line.split()[2]


def test_settings_file_sets_financial_quarters_for_a_csv_plan(tmp_path: Path) -> None:
    """`--settings` with `quarters: financial` makes Q1 2027 end on 30 June 2027, the import
    says which reading it used, and a later import without it keeps the reading."""
    plan = tmp_path / "plan.csv"
    plan.write_text(PLAN, encoding="utf-8")
    settings = tmp_path / "settings.yaml"
    settings.write_text("plan:\n  quarters: financial\n", encoding="utf-8")
    people = EXAMPLES / "wirral" / "people.csv"
    first = pulse(
        tmp_path, "import", plan, "--people", people, "--plan", "qa", "--settings", settings
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("quarters of a plain year read as financial-year quarters") == 1
    assert "value 'Spring 2027': read 'Spring 2027' as due 31 May 2027" in first.stdout

    again = pulse(tmp_path, "import", plan, "--plan", "qa")
    assert again.returncode == 0, again.stderr
    assert "financial-year quarters" in again.stdout
    status = pulse(tmp_path, "status", "--plan", "qa", "--as-of", "2027-01-10").stdout
    assert _due(status, "1.1") == "2027-06-30"
    assert _due(status, "1.2") == "2027-05-31"
