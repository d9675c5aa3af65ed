"""The live view's pure pieces (issue 14): the charts' bars, the filters a GET form gives,
spreadsheet cells that must not run as formulas, and the OpenID Connect settings."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from bot.settings import Settings
from digests.content import DigestSection
from handlers.web.live import CHART_WIDTH, LABEL_WIDTH, _cell, bars, read_filters


def test_each_bar_fills_the_width_in_its_ratings_shares() -> None:
    """A bar's segments are in rating order, in proportion, and end at the chart's edge;
    an empty priority draws no segment."""
    drawn, height = bars([("Early help", [1, 0, 2, 1, 0]), ("Workforce", [0, 0, 0, 0, 0])])
    first = drawn[0]
    assert [s.count for s in first.segments] == [1, 2, 1]
    assert first.segments[0].x == LABEL_WIDTH
    end = first.segments[-1].x + first.segments[-1].width
    assert end == pytest.approx(CHART_WIDTH)
    assert first.segments[1].width == pytest.approx(2 * first.segments[0].width)
    assert drawn[1].segments == ()
    assert drawn[1].y > first.y
    assert height > drawn[1].y


def test_filters_read_from_a_get_form_and_each_bad_field_is_an_error() -> None:
    """A day written either way, a priority, a lead and a status are read; a day that is not
    one, a priority not listed and an unknown status are each an error by their field."""
    filters, errors = read_filters(
        {"as_of": "20/11/2026", "priority": "2", "lead": "AW", "status": "overdue"}, [1, 2]
    )
    assert errors == {}
    assert filters.as_of == date(2026, 11, 20)
    assert filters.priority == 2
    assert filters.lead == "AW"
    assert filters.status is DigestSection.OVERDUE
    _, errors = read_filters({"as_of": "soon", "priority": "7", "status": "lost"}, [1, 2])
    assert set(errors) == {"as-of", "priority", "status"}
    assert read_filters({}) == (read_filters({})[0], {})


@pytest.mark.parametrize("text", ["=1+1", "+44 151", "-2", "@SUM(A1)"])
def test_cells_a_spreadsheet_would_run_are_quoted(text: str) -> None:
    """Text starting as a formula would is written with an apostrophe before it."""
    assert _cell(text) == "'" + text
    assert _cell("Drafting") == "Drafting"
    assert _cell(3) == 3


def test_oidc_sign_in_needs_its_four_settings() -> None:
    """WEB_SIGN_IN=oidc without its issuer, client and tenant is refused naming what is
    missing; with them it is accepted."""
    with pytest.raises(ValidationError, match="OIDC_CLIENT_SECRET, OIDC_TENANT_ID"):
        Settings(
            _env_file=None,
            WEB_SIGN_IN="oidc",
            OIDC_ISSUER="https://login.microsoftonline.com/t/v2.0",
            OIDC_CLIENT_ID="c",
        )
    settings = Settings(
        _env_file=None,
        WEB_SIGN_IN="oidc",
        OIDC_ISSUER="https://login.microsoftonline.com/t/v2.0",
        OIDC_CLIENT_ID="c",
        OIDC_CLIENT_SECRET="s",
        OIDC_TENANT_ID="t",
    )
    assert settings.web_sign_in == "oidc"
