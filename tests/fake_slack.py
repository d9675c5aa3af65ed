"""A fake Slack Web API on loopback: enough of Slack to test what we send, and how we
survive what Slack does to us (TESTING.md, "Slack"; RELIABILITY.md scenarios 17-27).

`FakeSlack` is an aiohttp app on 127.0.0.1 answering `/api/{method}` (POST with a form or
JSON body, and GET with a query string, as slack_sdk sends `conversations.history`). It keeps
what a workspace would: messages per channel with their ts, thread and metadata, DM channels,
users by email, views. Views and message blocks that break a Block Kit limit
(tests/block_kit.py) are refused as Slack refuses them. Every request is recorded in `calls`
(as `(method, params)`), whether or not it succeeded; `posted` is what Slack would show, so
"exactly one message" is `len(fake.posted) == 1` however many calls there were.

Faults are scripted per method and used up in order::

    fake.fail_next("chat.postMessage", status=429, retry_after=1)   # rate limited
    fake.fail_next("chat.postMessage", status=503)                  # not processed
    fake.fail_next("chat.postMessage", error="fatal_error", record=True)  # posted, then ok:false
    fake.fail_next("chat.postMessage", drop=True)     # posted, then the connection is closed
    fake.fail_next("chat.postMessage", delay=2.0)     # posted, answered late
    fake.fail_next("chat.postMessage", error="channel_not_found")

Build a client with `fake.client()` (no automatic retries, like the code under test).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot.domain.cycles import PromptItem
from bot.domain.model import Contact, Person, Plan
from tests.block_kit import MAX_MESSAGE_BLOCKS, block_problems, view_problems

BOT_USER = "UBOTPULSE"
BOT_ID = "BPULSE"
TOKEN = "xoxb-test"

# Parameters Slack takes as JSON even inside a form body.
_JSON_PARAMS = ("blocks", "attachments", "metadata", "view")


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour of the next call to a method."""

    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    record: bool = False  # carry the call out before answering with the fault
    drop: bool = False  # close the connection instead of answering
    delay: float = 0.0  # answer this many seconds late


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true")


class FakeSlack:
    """The fake workspace and its Web API server."""

    def __init__(
        self,
        *,
        users_by_email: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users_by_email = {k.lower(): v for k, v in (users_by_email or {}).items()}
        # Stamps each call in `times`: a test that injects a clock into the code under test
        # sets the same clock here to see when, by that clock, each call arrived.
        self.clock = clock
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.times: list[float] = []
        self.channels: dict[str, list[dict[str, Any]]] = {}  # oldest first
        self.dm_channels: dict[str, str] = {}
        self.views: list[dict[str, Any]] = []
        self._faults: dict[str, deque[Fault | None]] = {}  # None: answer normally
        self._last_ts = 0.0
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        self._closing.set()  # cut short any delayed answer
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def client(self, *, timeout: float = 5, token: str = TOKEN) -> AsyncWebClient:
        """A client pointed here, without the SDK's automatic retries."""
        return AsyncWebClient(
            token=token,
            base_url=self.base_url,
            timeout=timeout,  # type: ignore[arg-type]  # aiohttp takes seconds as a float
            retry_handlers=[],
        )

    # -- scripting and inspection ------------------------------------------------------

    def fail_next(
        self,
        method: str,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: float | None = None,
        record: bool | None = None,
        drop: bool = False,
        delay: float = 0.0,
        times: int = 1,
        after: int = 0,
    ) -> None:
        """Script `times` calls of `method` to misbehave, once `after` more calls have been
        answered normally. A dropped or delayed call is carried out unless `record=False`;
        one answered with an error or a status only if `record=True`."""
        if status == 200 and error is None and not drop and not delay:
            raise ValueError("a fault needs a status, an error, drop or delay")
        if status == 429 and retry_after is None:
            retry_after = 1
        carried_out = record if record is not None else (drop or (delay > 0 and not error))
        fault = Fault(status, error, retry_after, carried_out, drop, delay)
        queue = self._faults.setdefault(method, deque())
        queue.extend([None] * after)
        queue.extend([fault] * times)

    def clear_faults(self) -> None:
        """Forget every scripted fault not yet used."""
        self._faults.clear()

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    @property
    def posted(self) -> list[dict[str, Any]]:
        """Every message that exists, in the order posted (thread replies included)."""
        every = [m for messages in self.channels.values() for m in messages]
        return sorted(every, key=lambda m: float(m["ts"]))

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """The messages of one channel, oldest first."""
        return list(self.channels.get(channel, []))

    # -- the server --------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update((await request.post()).items())
        for key in _JSON_PARAMS:
            if isinstance(params.get(key), str):
                # Unparseable stays a string: the method answers as Slack would.
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        self.calls.append((method, params))
        self.times.append(self.clock())
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return web.json_response({"ok": False, "error": "not_authed"})
        queue = self._faults.get(method)
        fault = queue.popleft() if queue else None
        if fault is None:
            return web.json_response(self._dispatch(method, params))

        result = self._dispatch(method, params) if fault.record else None
        if fault.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), fault.delay)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never written: the connection is gone
        if fault.status == 429:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": f"{fault.retry_after:g}"},
            )
        if fault.status >= 500:
            return web.Response(status=fault.status, text="upstream trouble")
        if fault.error is not None:
            return web.json_response({"ok": False, "error": fault.error})
        # Only delayed: the real answer, late.
        return web.json_response(result if result is not None else self._dispatch(method, params))

    def _dispatch(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post_message,
            "chat.update": self._update,
            "conversations.open": self._open,
            "conversations.history": self._history,
            "conversations.replies": self._replies,
            "users.lookupByEmail": self._lookup_by_email,
            "views.open": self._view,
            "views.publish": self._view,
            "views.update": self._view,
        }.get(method)
        return handler(params) if handler else {"ok": False, "error": "unknown_method"}

    def _next_ts(self) -> str:
        self._last_ts = max(round(time.time(), 6), round(self._last_ts + 0.000001, 6))
        return f"{self._last_ts:.6f}"

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "user_id": BOT_USER, "bot_id": BOT_ID, "team_id": "TPULSE"}

    def _post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not params.get("text") and not params.get("blocks"):
            return {"ok": False, "error": "no_text"}
        if params.get("blocks") is not None and block_problems(
            params["blocks"], most=MAX_MESSAGE_BLOCKS
        ):
            return {"ok": False, "error": "invalid_blocks"}
        thread_ts = params.get("thread_ts")
        messages = self.channels.setdefault(channel, [])
        if thread_ts is not None:
            parent = next((m for m in messages if m["ts"] == thread_ts), None)
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            parent["thread_ts"] = parent["ts"]
            parent["reply_count"] = parent.get("reply_count", 0) + 1
        message: dict[str, Any] = {
            "type": "message",
            "channel": channel,
            "ts": self._next_ts(),
            "user": BOT_USER,
            "bot_id": BOT_ID,
            "text": params.get("text", ""),
        }
        if params.get("blocks") is not None:
            message["blocks"] = params["blocks"]
        if thread_ts is not None:
            message["thread_ts"] = str(thread_ts)
        if params.get("metadata") is not None:
            message["metadata"] = params["metadata"]
        messages.append(message)
        visible = {k: v for k, v in message.items() if k != "channel"}
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": visible}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        found = next(
            (m for m in self.channels.get(channel, []) if m["ts"] == params.get("ts")), None
        )
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        if params.get("blocks") is not None and block_problems(
            params["blocks"], most=MAX_MESSAGE_BLOCKS
        ):
            return {"ok": False, "error": "invalid_blocks"}
        for key in ("text", "blocks", "metadata"):
            if params.get(key) is not None:
                found[key] = params[key]
        return {"ok": True, "channel": channel, "ts": found["ts"], "text": found["text"]}

    def _open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users") or "")
        if not users or "," in users:
            return {"ok": False, "error": "users_list_not_supplied" if not users else "not_im"}
        if not users.startswith(("U", "W")):
            return {"ok": False, "error": "user_not_found"}
        channel = self.dm_channels.setdefault(users, "D" + users[1:])
        self.channels.setdefault(channel, [])
        return {"ok": True, "channel": {"id": channel}}

    def _shown(self, message: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """A message as the API shows it: metadata only when asked for all of it."""
        hidden = {"channel"}
        if not _truthy(params.get("include_all_metadata")):
            hidden.add("metadata")
        return {k: v for k, v in message.items() if k not in hidden}

    @staticmethod
    def _page(
        items: list[dict[str, Any]], params: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], str]:
        start = int(params.get("cursor") or 0)
        limit = max(1, min(int(params.get("limit") or 100), 1000))
        page = items[start : start + limit]
        more = start + limit < len(items)
        return page, str(start + limit) if more else ""

    @staticmethod
    def _in_range(ts: str, params: dict[str, Any]) -> bool:
        inclusive = _truthy(params.get("inclusive"))
        oldest = params.get("oldest")
        latest = params.get("latest")
        if oldest not in (None, ""):
            if float(ts) < float(oldest) or (float(ts) == float(oldest) and not inclusive):
                return False
        if latest not in (None, ""):
            if float(ts) > float(latest) or (float(ts) == float(latest) and not inclusive):
                return False
        return True

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        top = [
            m
            for m in reversed(self.channels.get(channel, []))
            if m.get("thread_ts", m["ts"]) == m["ts"] and self._in_range(m["ts"], params)
        ]
        page, cursor = self._page(top, params)
        return {
            "ok": True,
            "messages": [self._shown(m, params) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        ts = str(params.get("ts") or "")
        messages = self.channels.get(channel, [])
        if not any(m["ts"] == ts for m in messages):
            return {"ok": False, "error": "thread_not_found"}
        thread = [m for m in messages if m["ts"] == ts or m.get("thread_ts") == ts]
        thread = [m for m in thread if m["ts"] == ts or self._in_range(m["ts"], params)]
        page, cursor = self._page(thread, params)
        return {
            "ok": True,
            "messages": [self._shown(m, params) for m in page],
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def _lookup_by_email(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users_by_email.get(str(params.get("email") or "").lower())
        if user is None:
            return {"ok": False, "error": "users_not_found"}
        return {"ok": True, "user": {"id": user, "profile": {"email": params["email"]}}}

    def _view(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view")
        if not isinstance(view, dict):
            return {"ok": False, "error": "invalid_arguments"}
        problems = view_problems(view)
        if problems:
            # As Slack answers a view that breaks a Block Kit limit.
            return {
                "ok": False,
                "error": "invalid_arguments",
                "response_metadata": {"messages": problems},
            }
        self.views.append(view)
        return {"ok": True, "view": {**view, "id": f"V{len(self.views):08d}"}}


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """The `X-Slack-Signature` Slack sends with `body` at `timestamp`, signed with `secret`."""
    signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
    assert signature is not None  # None only when a timestamp or body is missing
    return signature


def simple_prompt(
    plan: Plan,
    person: Person,
    items: Sequence[PromptItem],
    prompt_id: int,
    contacts: Sequence[Contact] = (),
) -> list[dict[str, Any]]:
    """A prompt DM reduced to one line naming what it asks: for tests of who is asked where."""
    refs = ", ".join(i.milestone_ref for i in items)
    return [{"text": f"{plan.title}: please rate {refs} (prompt {prompt_id})"}]
