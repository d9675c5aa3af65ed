"""A prompt's own examples, sent back through the CLI and local mail, are all recorded."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from tests.conftest import EXAMPLES
from tests.e2e.test_cli import pulse


def _read(path: Path) -> EmailMessage:
    message = message_from_bytes(path.read_bytes(), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def _plain(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def _examples(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith("For example:")) + 2
    examples = []
    for line in lines[start:]:
        if not line.strip():
            break
        examples.append(line.strip())
    return examples


def test_every_wirral_prompts_examples_sent_back_are_recorded(tmp_path: Path) -> None:
    """Leads of the sample plan, prompted when all their milestones are overdue, send back
    their prompt's examples with `pulse reply`: every confirmation is headed "Recorded" and
    lists no line as not recorded."""
    imported = pulse(tmp_path, "import", EXAMPLES / "wirral" / "plan.yaml")
    assert imported.returncode == 0, imported.stderr
    prompted = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T09:05")
    assert prompted.returncode == 0, prompted.stderr
    outbox = tmp_path / "var" / "mail" / "outbox"
    prompts = sorted(outbox.glob("*-prompt.eml"))[:6]  # a `pulse reply` each: keep it short
    assert len(prompts) == 6
    for path in prompts:
        examples = _examples(_plain(_read(path)))
        assert examples
        replied = pulse(tmp_path, "reply", path, "\n".join(examples))
        assert replied.returncode == 0, replied.stderr
    answered = pulse(tmp_path, "run", "--once", "--now", "2026-11-23T10:30")
    assert answered.returncode == 0, answered.stderr
    confirmations = [_read(p) for p in sorted(outbox.glob("*-confirmation.eml"))]
    assert len(confirmations) == len(prompts)
    for confirmation in confirmations:
        assert str(confirmation["Subject"]).startswith("Recorded:")
        assert "Not recorded:" not in _plain(confirmation)
