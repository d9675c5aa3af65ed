"""The HTTP door to the Slack app (RELIABILITY.md scenarios 5-7 and 55): `build_http_app`
puts a guard in front of bolt that caps the body, rejects a missing, non-numeric or
overlong timestamp and a bad signature, and refuses a body that does not parse or a payload
of a shape Slack never sends (`handlers.slack.shape`), all before bolt reads it; no stack
trace ever reaches the caller or the log. `SkewAlarm` tells a skewed server clock from a
forger among the refused requests.

The body is parsed here once, as bolt would parse it, and handed to bolt parsed.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.signature import Clock as SdkClock
from slack_sdk.signature import SignatureVerifier

from bot.clock import Clock, system_clock
from handlers.slack.shape import shape_problem

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_BODY",
    "MAX_TIMESTAMP_DIGITS",
    "TIMESTAMP_TOLERANCE",
    "SkewAlarm",
    "build_http_app",
]

DEFAULT_MAX_BODY = 256 * 1024  # a big modal submission is tens of kilobytes

TIMESTAMP_TOLERANCE = 300


class _SdkClock(SdkClock):
    """Our clock, as the SDK's signature verifier asks for it."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> float:
        return self._clock().timestamp()


class SkewAlarm:
    """Tells a skewed server clock from a forger (RELIABILITY.md scenario 55).

    A refused request whose signature is right for its own timestamp came from Slack: only
    the timestamp's distance from our clock failed it, so our clock (or Slack's) is off and
    every click is being refused. That is logged as an error with the measured offset, at
    most once per `every` seconds; a wrong signature is only a warning, as before.
    """

    def __init__(self, signing_secret: str, clock: Clock, every: float = 600) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self._clock = clock
        self._every = every
        self._last: float | None = None

    def refused(self, body: str, timestamp: str, signature: str) -> None:
        expected = self._verifier.generate_signature(timestamp=timestamp, body=body)
        now = self._clock().timestamp()
        offset = int(timestamp) - int(now)
        if expected is None or not hmac.compare_digest(expected, signature):
            log.warning("slack request refused: invalid signature")
            return
        if abs(offset) <= TIMESTAMP_TOLERANCE:
            return
        if self._last is not None and now - self._last < self._every:
            return
        self._last = now
        log.error(
            "slack requests are refused because the clocks disagree: a correctly signed "
            "request is stamped %d s %s ours (Slack allows %d s). Check this server's "
            "time synchronisation (NTP); until then no click or form can be recorded",
            abs(offset),
            "ahead of" if offset > 0 else "behind",
            TIMESTAMP_TOLERANCE,
        )


# Seconds since 1970 have 10 digits until the year 2286; a longer stamp is not a time, and
# one of thousands of digits is more than Python will turn into an int.
MAX_TIMESTAMP_DIGITS = 12


def _bad_request(reason: str) -> web.Response:
    """400 for a request that cannot be read, logged as one line (never its body)."""
    log.warning("slack request refused (400): %s", reason)
    return web.Response(status=400, text=reason.partition(":")[0])


def build_http_app(
    app: AsyncApp,
    *,
    signing_secret: str,
    path: str = "/slack/events",
    max_body: int = DEFAULT_MAX_BODY,
    clock: Clock = system_clock,
) -> web.Application:
    """An aiohttp app serving `app` at `path` behind a guard that refuses, before bolt
    parses anything: an oversized body (413), a missing timestamp or signature (401), a
    non-numeric or overlong timestamp (400), a bad signature or a stale timestamp (401, and a
    clock-skew alert when the signature shows the request came from Slack: see `SkewAlarm`),
    a body that does not parse and a payload bolt or our listeners could not read safely
    (`shape_problem`) (400, logged as one line)."""
    verifier = SignatureVerifier(signing_secret, clock=_SdkClock(clock))
    alarm = SkewAlarm(signing_secret, clock)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        if request.content_length is not None and request.content_length > max_body:
            return web.Response(status=413, text="request body too large")
        try:
            raw = await request.read()  # aiohttp stops at client_max_size
        except web.HTTPRequestEntityTooLarge:
            return web.Response(status=413, text="request body too large")
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        signature = request.headers.get("X-Slack-Signature")
        if timestamp is None or signature is None:
            return web.Response(status=401, text="missing signature")
        stamp = timestamp.strip()
        if not stamp.isascii() or not stamp.isdigit() or len(stamp) > MAX_TIMESTAMP_DIGITS:
            return _bad_request("bad timestamp")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return _bad_request("body is not UTF-8")
        if not verifier.is_valid(body=body, timestamp=timestamp, signature=signature):
            alarm.refused(body, stamp, signature)
            return web.Response(status=401, text="invalid signature")
        parsed = _parse(body, request.content_type)
        if parsed is None:
            return _bad_request("malformed body")
        problem = shape_problem(parsed)
        if problem is not None:
            return _bad_request(f"malformed payload: {problem}")
        request[_PARSED] = (body, parsed)
        return await handler(request)

    async def events(request: web.Request) -> web.StreamResponse:
        body, parsed = request[_PARSED]
        # The body parsed once, here, and handed to bolt as parsed; bolt still checks the
        # signature of the raw body itself. A rating click carries its whole prompt message
        # (URL-encoded JSON), and parsing that twice was a large share of a click's time.
        bolt_request = AsyncBoltRequest(
            body=parsed,
            query=request.query_string,
            headers=dict(request.headers),
            mode="socket_mode",
        )
        bolt_request.raw_body, bolt_request.mode = body, "http"
        return await to_aiohttp_response(await app.async_dispatch(bolt_request))

    http = web.Application(middlewares=[guard], client_max_size=max_body)
    http.router.add_post(path, events)
    return http


_PARSED = web.RequestKey("pulse_slack_body", tuple)


def _parse(body: str, content_type: str) -> dict[str, Any] | None:
    """The body as bolt reads it (JSON, or a form whose `payload`, if any, is JSON), or
    None when it does not parse: a form field without `=`, JSON that is not an object,
    JSON nested past what the parser can follow."""
    if not body:
        return {}
    try:
        if content_type == "application/json" or body.startswith("{"):
            parsed = json.loads(body)
        else:
            if not all("=" in field for field in body.split("&")):
                return None  # what parse_qs(strict_parsing=True) refuses, without decoding
            fields = dict(parse_qsl(body, keep_blank_values=True))
            if "payload" in fields:
                parsed = json.loads(fields["payload"])
            elif "payload" in body:
                parsed = {}  # as bolt reads it: a body naming a payload it does not carry
            else:
                parsed = fields
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None
