"""The bolt listeners of Plan Pulse (DESIGN.md §8): rating selects and the "Update with
notes" modal on prompt DMs, the `/pulse` command, and the App Home tab.

Each listener is a small module-level function, registered by `register` as bolt-python's
own examples do; bolt hands it what it names (`ack`, `body`, `context`, ...), and the user
is bolt's `context.user_id`. What a listener needs of Plan Pulse is the `SlackAnswers` in
`context["answers"]`. What goes wrong is told to the user in one place, `answering`: a
refusal in its own words, a database failure as "try again" (nothing was saved); anything
else is a bug, which bolt logs.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.messages import slack_blocks as kit
from handlers.slack.answers import NOT_LINKED, RETRY, Refused, SlackAnswers
from handlers.slack.commands import HELP, reply_to
from storage.db import DATABASE_ERRORS

log = logging.getLogger(__name__)

__all__ = ["answering", "register"]

ANSWERS = "answers"  # the key of the `SlackAnswers` in bolt's context


def register(app: AsyncApp, answers: SlackAnswers) -> None:
    """Put `answers` in every request's context and register the listeners on `app`."""

    async def with_answers(context: AsyncBoltContext, next: Callable[[], Awaitable[None]]) -> None:
        context[ANSWERS] = answers
        await next()

    app.use(with_answers)
    app.action("rate")(rate)
    app.action("open_web")(open_web)
    app.action("open_update")(open_update)
    app.view("pulse_update")(submit_update)
    app.command("/pulse")(pulse_command)
    app.event("app_home_opened")(home_opened)


@contextlib.asynccontextmanager
async def answering(
    say: Callable[[str], Awaitable[None]], *, failing: str, retry: str = RETRY
) -> AsyncIterator[None]:
    """The one translation of a listener's failure into what the user is told, through
    `say`: a `Refused` in its own words; a database failure as `retry` (and `failing` with
    its traceback in the log). Anything else is a bug and goes on to bolt, which logs it."""
    try:
        yield
    except Refused as refused:
        await say(str(refused))
    except DATABASE_ERRORS:
        log.exception("%s", failing)
        await say(retry)


def _answers(context: AsyncBoltContext) -> SlackAnswers:
    return cast(SlackAnswers, context[ANSWERS])


def _user(context: AsyncBoltContext) -> str:
    return str(context.user_id or "")


async def _tell(respond: AsyncRespond, text: str) -> None:
    """An ephemeral message to the user through the response URL; never raises."""
    try:
        await respond(text=text, response_type="ephemeral", replace_original=False)
    except (SlackApiError, SlackClientError, OSError, TimeoutError, ValueError) as failed:
        log.warning("could not tell the user: %s", failed)


def _given_at(action: dict[str, Any], now: datetime) -> datetime:
    try:
        return datetime.fromtimestamp(float(action["action_ts"]), UTC)
    except (KeyError, TypeError, ValueError, OverflowError):
        return now


async def rate(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    """A rating chosen in a prompt DM: recorded, acked, then the DM shows it."""
    answers, user = _answers(context), _user(context)
    option = action.get("selected_option") or {}
    choice = kit.parse_choice(option.get("value") if isinstance(option, dict) else None)
    if choice is None or not user:
        log.warning("slack rating refused: unreadable value from %s", user or "nobody")
        await ack()
        await _tell(respond, "That choice could not be read; nothing was recorded.")
        return
    prompt_id, ref, rating = choice
    key = f"slack:{action.get('action_ts') or body.get('trigger_id')}:{user}"

    async def say(text: str) -> None:
        await ack()
        await _tell(respond, text)

    async with answering(say, failing=f"slack rating of {ref} on prompt {prompt_id} not saved"):
        recorded = await answers.record_rating(
            user, prompt_id, ref, rating, key=key, given_at=_given_at(action, answers.clock())
        )
        await ack()
        log.info("slack rating %s for %s on prompt %s: %d new", rating, ref, prompt_id, recorded)
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        ts = container.get("message_ts") or message.get("ts")
        if channel and ts and isinstance(message.get("blocks"), list):
            when = answers.clock().strftime("%-d %b %Y")
            blocks = kit.mark_recorded(message["blocks"], ref, rating, when=when)
            text = f"Recorded rating {rating} for {ref}"
            answers.followups.start(answers.update_message(str(channel), str(ts), blocks, text))


async def open_web(ack: AsyncAck) -> None:
    """A link button: the browser opens the page; nothing to do here."""
    await ack()


async def open_update(
    ack: AsyncAck,
    body: dict[str, Any],
    action: dict[str, Any],
    respond: AsyncRespond,
    context: AsyncBoltContext,
) -> None:
    """ "Update with notes" on a prompt DM: opens the modal on the prompt's milestones."""
    await ack()
    answers, user = _answers(context), _user(context)
    value = str(action.get("value", ""))
    if not value.isascii() or not value.isdigit():
        await _tell(respond, "That button could not be read.")
        return

    async def say(text: str) -> None:
        await _tell(respond, text)

    async with answering(
        say,
        failing=f"could not open the update modal for prompt {value}",
        retry="Sorry, the update form could not be opened; please try again.",
    ):
        items, _ = await answers.modal_items(int(value), user)
        container = body.get("container") or {}
        view = kit.update_modal(
            int(value),
            items,
            channel=container.get("channel_id"),
            ts=container.get("message_ts"),
        )
        await answers.client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)


async def submit_update(ack: AsyncAck, view: dict[str, Any], context: AsyncBoltContext) -> None:
    """A page of the modal submitted: recorded whole, or its errors shown on the form."""
    answers, user = _answers(context), _user(context)
    meta = kit.parse_metadata(view.get("private_metadata"))
    values = (view.get("state") or {}).get("values") or {}
    first_block = next(iter(values), None)
    if meta is None or not isinstance(values, dict):
        await ack(
            response_action="errors", errors={first_block or "": "This form could not be read."}
        )
        return
    key = f"slack:view:{view.get('id')}:{meta.page}:{user}"

    async def say(text: str) -> None:
        await ack(response_action="errors", errors={first_block or "": text})

    async with answering(say, failing=f"slack modal for prompt {meta.prompt_id} not saved"):
        recorded, errors, items = await answers.record_modal(user, meta, values, key=key)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        if meta.page + 1 < kit.page_count(items):
            await ack(
                response_action="update",
                view=kit.update_modal(
                    meta.prompt_id, items, page=meta.page + 1, channel=meta.channel, ts=meta.ts
                ),
            )
        else:
            await ack()
        log.info("slack modal for prompt %s: %d answers", meta.prompt_id, len(recorded))
        if meta.channel and meta.ts and recorded:
            answers.followups.start(
                answers.update_message(
                    meta.channel, meta.ts, kit.summary_blocks(recorded), "Your update was recorded"
                )
            )


async def pulse_command(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    """`/pulse`: alone, the update modal on a prompt made there and then; with a word, the
    answer to it (`handlers.slack.commands`)."""
    answers, user = _answers(context), _user(context)
    words = str(command.get("text") or "").strip()
    verb, _, rest = words.partition(" ")
    verb = verb.lower()

    async def say(text: str) -> None:
        await ack(text=text)

    async with answering(
        say,
        failing=f"/pulse {verb} failed",
        retry="Sorry, that did not work just now; please try again.",
    ):
        if not verb:
            await ack()
            found = await answers.prompt_for_command(user)
            if found is None:
                await _tell(respond, "You have no open milestones to update.")
                return
            view = kit.update_modal(found[0], found[1])
            await answers.client.views_open(
                trigger_id=str(command.get("trigger_id", "")), view=view
            )
            return
        if verb == "help":
            await ack(text=HELP)
            return
        await ack(text=await reply_to(answers, user, verb, rest.strip()))


async def home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    """The App Home tab: the person's milestones and how they stand."""
    # Publishing the same view again is harmless, so a retried event needs no memory.
    answers, user = _answers(context), _user(context)
    if event.get("tab", "home") != "home" or not user:
        return
    now = answers.clock()
    async with answers.writing, answers.sessions() as session:
        person = await answers.person(session, user)
        if person is None:
            view = {
                "type": "home",
                "blocks": [{"type": "section", "text": {"type": "plain_text", "text": NOT_LINKED}}],
            }
        else:
            view = kit.home_view(person.name, await answers.milestones_of(session, person, now))
    await answers.client.views_publish(user_id=user, view=view)
