"""A fake Teams Workflows endpoint on loopback: what a flow "Post to a channel when a webhook
request is received" does with what we send (TESTING.md, "Microsoft Teams without a tenant").

`FakeWorkflows` is an aiohttp app on 127.0.0.1. Each flow has a URL of Workflows' shape,
`/workflows/<flow>/triggers/manual/paths/invoke?api-version=1&sig=<signature>`: a request
with another signature gets 401, to an unknown flow 404. An accepted request is answered
202 (as Workflows does, before the flow runs) and its message "appears in the channel":
`channel(flow)` lists what each flow posted, in order. Every message received is checked as
Teams would take it (tests/adaptive_cards.py: the envelope, the card version, under 28 KB as
received, and npm's `adaptivecards` parser), and its problems kept with it.

Faults are scripted and used up in order::

    fake.fail_next(status=429, retry_after=30)   # throttled: nothing posted
    fake.fail_next(status=503)                   # not triggered: nothing posted
    fake.fail_next(drop=True)                    # posted, then the connection is dropped

Each request is stamped with `clock()` (the test's settable clock), so a test can say that
nothing was sent before a `Retry-After` had passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest_asyncio
from aiohttp import web

from tests.adaptive_cards import card_contents, require_parser, validate_message

SIGNATURE = "s3cr3t-Sig_0123456789abcdefABCDEF"


@dataclass(frozen=True, slots=True)
class Fault:
    """One scripted misbehaviour of the next request."""

    status: int = 202
    retry_after: float | None = None
    drop: bool = False  # post the message, then close the connection without answering


@dataclass(slots=True)
class Received:
    """One request as the endpoint saw it."""

    flow: str
    at: datetime
    size: int
    message: dict[str, Any]
    status: int  # what was answered (0: the connection was dropped)
    problems: list[str] = field(default_factory=list)

    @property
    def cards(self) -> list[dict[str, Any]]:
        return [dict(c) for c in card_contents(self.message)]


class FakeWorkflows:
    """Flows on a loopback server, and what they posted."""

    def __init__(self, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.requests: list[Received] = []
        self._faults: deque[Fault | None] = deque()
        self._flows: set[str] = set()
        self._runner: web.AppRunner | None = None
        self.port = 0

    def url(self, flow: str, *, signature: str = SIGNATURE) -> str:
        """A flow's webhook URL (the flow exists from now on)."""
        self._flows.add(flow)
        return (
            f"http://127.0.0.1:{self.port}/workflows/{flow}/triggers/manual/paths/invoke"
            f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={signature}"
        )

    def delete(self, flow: str) -> None:
        """The flow is gone (its owner's account was removed): 404 from now on."""
        self._flows.discard(flow)

    def fail_next(
        self,
        *,
        status: int = 202,
        retry_after: float | None = None,
        drop: bool = False,
        times: int = 1,
    ) -> None:
        """Script the next `times` requests to misbehave."""
        self._faults.extend([Fault(status, retry_after, drop)] * times)

    def channel(self, flow: str) -> list[dict[str, Any]]:
        """What the flow posted to its channel, in order: the messages it accepted or ran."""
        return [r.message for r in self.requests if r.flow == flow and r.status in (0, 202)]

    def problems(self) -> list[str]:
        """Everything Teams would object to in the messages received."""
        return [f"request {i}: {p}" for i, r in enumerate(self.requests) for p in r.problems]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        flow = request.match_info["flow"]
        raw = await request.read()
        try:
            message = json.loads(raw)
        except ValueError:
            message = None
        refused = (
            404
            if flow not in self._flows
            else 401
            if request.query.get("sig") != SIGNATURE
            else 400
            if not isinstance(message, dict)
            else None
        )
        if refused is not None or not isinstance(message, dict):
            self.requests.append(Received(flow, self.clock(), len(raw), {}, refused or 400))
            return web.json_response({"error": {"code": "Refused"}}, status=refused or 400)
        fault = self._faults.popleft() if self._faults else None
        status = 0 if fault is not None and fault.drop else (fault.status if fault else 202)
        received = Received(flow, self.clock(), len(raw), message, status)
        self.requests.append(received)
        if status in (0, 202):
            received.problems = await asyncio.to_thread(validate_message, message, size=len(raw))
        if fault is not None and fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never written: the connection is gone
        if status == 429:
            retry = "" if fault is None or fault.retry_after is None else f"{fault.retry_after:g}"
            return web.json_response(
                {"error": {"code": "WorkflowTriggerIsThrottled"}},
                status=429,
                headers={"Retry-After": retry} if retry else {},
            )
        if status != 202:
            return web.Response(status=status, text="trouble")
        return web.Response(status=202)

    async def start(self) -> None:
        require_parser()  # every card received is parsed: fail now if it cannot be
        app = web.Application()
        app.router.add_post("/workflows/{flow}/triggers/manual/paths/invoke", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@contextlib.asynccontextmanager
async def running_workflows() -> AsyncIterator[FakeWorkflows]:
    """A fresh fake Workflows endpoint, stopped afterwards."""
    fake = FakeWorkflows()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()


@pytest_asyncio.fixture
async def fake_workflows() -> AsyncIterator[FakeWorkflows]:
    """A fresh fake Workflows endpoint for one test, stopped after it."""
    async with running_workflows() as fake:
        yield fake
