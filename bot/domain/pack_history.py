"""Read models of a plan's history for the board pack, as storage aggregates them: plain
values, one per person, per milestone or per (day, priority, rating)."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple


class LeadResponse(NamedTuple):
    """One person's prompts: sent in the pack's period, answered of those, and how many of
    their latest prompts in a row (up to the pack's day) went unanswered."""

    person: str
    prompted: int
    answered: int
    silent_cycles: int


class SupportAsk(NamedTuple):
    """Answers about one milestone that asked for support in the pack's period."""

    ref: str
    asks: int
    first: datetime


class MixPoint(NamedTuple):
    """How many milestones of a priority had a rating (None: not yet rated) at a moment,
    given by its index in the moments asked for."""

    point: int
    priority: int
    rating: int | None
    milestones: int
