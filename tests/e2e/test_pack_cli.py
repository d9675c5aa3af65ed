"""`pulse pack` as a coordinator runs it: the real binary writes the pack as Word and as a
web page, and refuses a bad period or network in one line, writing nothing."""

from __future__ import annotations

from pathlib import Path

from docx import Document

from tests.e2e.test_cli import import_small, pulse


def test_pulse_pack_writes_word_and_html(tmp_path: Path) -> None:
    """`pulse pack --format docx` and `--format html` write the board pack where asked, its
    title the plan's and its dates as people write them."""
    assert import_small(tmp_path).returncode == 0
    out = pulse(
        tmp_path, "pack", "--plan", "small", "--since", "2026-11-01", "--as-of", "20/11/2026",
        "--format", "docx", "--output", tmp_path / "pack.docx",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "pack.docx" in out.stdout
    document = Document(str(tmp_path / "pack.docx"))
    assert document.paragraphs[0].style is not None
    assert document.paragraphs[0].style.name == "Title"
    assert "Since 1 November 2026, as of 20 November 2026" in document.paragraphs[1].text
    out = pulse(
        tmp_path, "pack", "--plan", "small", "--since", "2026-11-01", "--as-of", "2026-11-20",
        "--format", "html", "--network", "workforce",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    written = tmp_path / "var" / "packs" / "small-workforce-2026-11-20.html"
    assert "Workforce network" in written.read_text(encoding="utf-8")


def test_a_bad_period_or_network_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    """`--since` after `--as-of`, or a network the plan does not have, is refused with one
    line on stderr and no file written."""
    assert import_small(tmp_path).returncode == 0
    late = pulse(
        tmp_path, "pack", "--plan", "small", "--since", "2026-12-01", "--as-of", "2026-11-20",
        "--format", "html",
    )  # fmt: skip
    assert late.returncode == 1
    assert late.stderr.strip().splitlines() == [
        "error: --since 2026-12-01 must be before --as-of 2026-11-20"
    ]
    unknown = pulse(
        tmp_path, "pack", "--plan", "small", "--since", "2026-11-01", "--format", "docx",
        "--network", "nope",
    )  # fmt: skip
    assert unknown.returncode == 1
    assert len(unknown.stderr.strip().splitlines()) == 1
    assert "nope" in unknown.stderr
    assert not (tmp_path / "var" / "packs").exists()
