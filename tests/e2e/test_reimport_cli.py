"""Re-importing a plan as an admin does it, through the `pulse` binary and local mail:
leads' answers survive, a header-only sheet or a forgotten --plan changes nothing, and
`pulse plans` lists and retires plans."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.test_cli import pulse

WIRRAL = EXAMPLES / "wirral"
CONFLICT = "1.1-1: the sheet says 3, Joe Bannham answered 2 on 4 Jun 2018; kept the answer"


def import_wirral(tmp: Path, *extra: str | Path, plan: Path = WIRRAL / "plan.csv") -> str:
    out = pulse(
        tmp,
        "import",
        plan,
        "--people",
        WIRRAL / "people.csv",
        "--networks",
        WIRRAL / "networks.csv",
        *extra,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def joe_answers(tmp: Path, text: str) -> None:
    """Monday's prompts go out; Joe Bannham answers his by email; the bot takes it in."""
    monday = pulse(tmp, "run", "--once", "--now", "2018-06-04T08:05:00Z")
    assert "enqueued 10 prompts" in monday.stdout, monday.stdout + monday.stderr
    outbox = tmp / "var" / "mail" / "outbox"
    joes = next(p for p in sorted(outbox.glob("*-prompt.eml")) if b"joe.bannham" in p.read_bytes())
    assert pulse(tmp, "reply", joes, text).returncode == 0
    taken = pulse(tmp, "run", "--once", "--now", "2018-06-04T10:00:00Z")
    assert "recorded 1 answers" in taken.stdout, taken.stdout + taken.stderr


def digest_item(tmp: Path, ref: str) -> dict[str, object]:
    out = pulse(tmp, "digest", "--plan", "wirral", "--network", "board", "--as-of", "2018-06-08")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    items = [i for name in ("overdue", "at_risk", "due_soon", "achieved") for i in body[name]]
    found: dict[str, object] = next(i for i in items if i["ref"] == ref)
    return found


def test_reimporting_the_unchanged_plan_keeps_a_leads_emailed_answer(tmp_path: Path) -> None:
    """Joe answers 1.1-1 with 2 and a note by email; re-importing the unchanged sheet (which
    says 3) keeps his answer in the digest and lists the difference, as --dry-run does; an
    export imported back records nothing and lists nothing."""
    first = import_wirral(tmp_path, "--plan", "wirral", "--ratings-as-of", "2018-04-16")
    assert first.startswith("imported new plan wirral")
    joe_answers(tmp_path, "1.1-1 2 Agreed; sign-off next week")
    answered = digest_item(tmp_path, "1.1-1")
    assert (answered["rating"], answered["note"]) == (2, "Agreed; sign-off next week")

    dry = import_wirral(tmp_path, "--plan", "wirral", "--dry-run")
    assert dry.startswith("would re-import plan wirral")
    assert CONFLICT in dry
    again = import_wirral(tmp_path, "--plan", "wirral", "--ratings-as-of", "2018-06-05")
    assert again.startswith("re-imported plan wirral")
    assert "ratings recorded 0; conflicts with answers 1" in again
    assert CONFLICT in again
    assert digest_item(tmp_path, "1.1-1") == answered

    export = tmp_path / "board.csv"
    exported = pulse(tmp_path, "export", "--plan", "wirral", "--format", "csv", "-o", export)
    assert exported.returncode == 0, exported.stderr
    back = pulse(tmp_path, "import", export, "--plan", "wirral")
    assert back.returncode == 0, back.stderr
    assert "ratings recorded 0; conflicts with answers 0" in back.stdout
    assert digest_item(tmp_path, "1.1-1") == answered

    preferred = import_wirral(
        tmp_path, "--plan", "wirral", "--prefer-sheet", "--ratings-as-of", "2018-06-05"
    )
    assert "ratings recorded 1; conflicts with answers 1" in preferred
    assert digest_item(tmp_path, "1.1-1")["rating"] == 3


def test_a_header_only_sheet_is_refused_with_what_it_would_retire(tmp_path: Path) -> None:
    """A sheet with only its header row would retire the whole plan: the import fails with
    the counts and the digest is unchanged; --retire-missing lets it through."""
    import_wirral(tmp_path, "--plan", "wirral", "--ratings-as-of", "2018-04-16")
    before = pulse(tmp_path, "digest", "--plan", "wirral", "--as-of", "2018-06-08").stdout
    header_only = tmp_path / "header.csv"
    header_only.write_text(
        (WIRRAL / "plan.csv").read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8"
    )
    refused = pulse(tmp_path, "import", header_only, "--plan", "wirral")
    assert refused.returncode == 1
    assert "would retire 28 of the plan's 28 actions and 77 of its 77 milestones" in refused.stderr
    assert "--retire-missing" in refused.stderr
    assert pulse(tmp_path, "digest", "--plan", "wirral", "--as-of", "2018-06-08").stdout == before
    allowed = pulse(tmp_path, "import", header_only, "--plan", "wirral", "--retire-missing")
    assert allowed.returncode == 0, allowed.stderr
    assert "actions +0 ~0 retired 28" in allowed.stdout


def test_a_forgotten_plan_key_makes_no_second_plan(tmp_path: Path) -> None:
    """With wirral loaded, `pulse import plan.csv` without --plan is refused, naming the
    plan to give, and `pulse plans` still lists one plan."""
    import_wirral(tmp_path, "--plan", "wirral")
    forgot = pulse(tmp_path, "import", WIRRAL / "plan.csv")
    assert forgot.returncode == 1
    assert "--plan wirral" in forgot.stderr
    assert "nothing was imported" in forgot.stderr
    listed = pulse(tmp_path, "plans")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == [
        "KEY",
        "TITLE",
        "ACTIONS",
        "MILESTONES",
        "PEOPLE",
        "LAST",
        "IMPORT",
        "STATE",
    ]
    assert len(lines) == 2
    assert lines[1].split()[:5] == ["wirral", "wirral", "28", "77", "10"]
    assert lines[1].endswith("live")


def test_a_retired_plan_prompts_nobody_and_keeps_its_history(tmp_path: Path) -> None:
    """`pulse plans retire wirral`: Monday's run prompts nobody, a manual prompt or digest
    post is refused, `pulse plans` shows it retired, and its status is still there."""
    import_wirral(tmp_path, "--plan", "wirral", "--ratings-as-of", "2018-04-16")
    retired = pulse(tmp_path, "plans", "retire", "wirral")
    assert retired.returncode == 0, retired.stderr
    assert "retired plan wirral" in retired.stdout
    monday = pulse(tmp_path, "run", "--once", "--now", "2018-06-04T08:05:00Z")
    assert "enqueued 0 prompts" in monday.stdout, monday.stdout + monday.stderr
    manual = pulse(tmp_path, "prompt", "--plan", "wirral")
    assert manual.returncode == 1
    assert "plan 'wirral' is retired" in manual.stderr
    post = pulse(tmp_path, "digest", "--plan", "wirral", "--post")
    assert post.returncode == 1
    assert "plan 'wirral' is retired" in post.stderr
    assert "retired" in pulse(tmp_path, "plans").stdout.splitlines()[1]
    status = pulse(tmp_path, "status", "--plan", "wirral", "--as-of", "2018-06-08")
    assert status.returncode == 0, status.stderr
    assert len(status.stdout.splitlines()) == 78
    unknown = pulse(tmp_path, "plans", "retire", "nope")
    assert unknown.returncode == 1
    assert "no plan with key 'nope'" in unknown.stderr
