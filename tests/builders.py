"""Builders of the plan and its updates as the pure rules see them, for unit tests: a
milestone due on a day (or ongoing), an action holding milestones, an update given at noon
UTC on a day. Defaults name one lead (MC) in one network (north); pass what a test is about."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from bot.domain.model import Action, Milestone, Timescale, Update


def milestone(
    ref: str, due: date | None, title: str | None = None, *, leads: tuple[str, ...] = ("MC",)
) -> Milestone:
    """Milestone `ref` of the action its ref starts with, due on `due` (None: ongoing)."""
    ts = Timescale(text="Ongoing", ongoing=True) if due is None else Timescale(text="x", due=due)
    return Milestone(
        ref=ref,
        title=title or f"Milestone {ref}",
        timescale=ts,
        action_ref=ref.split("-")[0],
        leads=leads,
    )


def action(ref: str, *milestones: Milestone, networks: tuple[str, ...] = ("north",)) -> Action:
    """Action `ref`, of the priority its ref starts with ("W2.2" is priority 2)."""
    return Action(
        ref=ref,
        title=f"Action {ref}",
        priority=int(ref.lstrip("W").split(".")[0]),
        leads=("MC",),
        networks=networks,
        milestones=milestones,
    )


def update(
    ref: str,
    on: date,
    rating: int | None = None,
    *,
    needs_support: bool = False,
    note: str | None = None,
    revised_due: date | None = None,
) -> Update:
    """MC's update of milestone `ref`, given at noon UTC on `on` (the same day in London)."""
    return Update(
        milestone_ref=ref,
        given_at=datetime.combine(on, time(12, 0), tzinfo=UTC),
        rating=rating,
        note=note,
        revised_due=revised_due,
        needs_support=needs_support,
        person_key="MC",
    )
