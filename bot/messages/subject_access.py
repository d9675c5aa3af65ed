"""The page a person's subject access export is written as (beside its JSON): every value
escaped, as the template autoescapes."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, Template, select_autoescape

_ENVIRONMENT: Environment | None = None


def _page() -> Template:
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        _ENVIRONMENT = Environment(
            loader=PackageLoader("bot.messages", "templates"),
            autoescape=select_autoescape(default=True),
            undefined=StrictUndefined,
        )
    return _ENVIRONMENT.get_template("subject_access.html.j2")


def subject_access_page(data: dict[str, Any], *, exported_at: str) -> str:
    """The HTML page of a subject access export's `data`."""
    return _page().render(data=data, exported_at=exported_at)
