"""The one web server of `pulse run` (issue 14): the update pages, Slack's events route in
HTTP mode, and the Teams bot's endpoint, on HTTP_HOST:HTTP_PORT.

What keeps a link in an email safe:
- No access log (the path holds the token) and no log line with a token.
- A GET never changes anything; a POST must carry the CSRF token of its link.
- Every response sends `Referrer-Policy: no-referrer`, a CSP allowing only our own stylesheet
  (no script at all, no inline style), `X-Frame-Options: DENY`, and pages `no-store`.
- An unknown or expired link gets one plain page saying what to do, never why; a client
  that keeps trying unknown tokens is answered 429 for a while (`Throttle`), while a valid
  link from it still opens. The client is the peer address, or the last address in
  X-Forwarded-For not of a trusted proxy when the peer is one (TRUSTED_PROXIES).
"""

from __future__ import annotations

import ipaddress
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape
from importlib import resources
from typing import Any

from aiohttp import web
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from bot.clock import Clock
from bot.domain.replies import EVIDENCE_QUESTION
from bot.messages.web_forms import (
    DATE_HINT,
    EVIDENCE_HINT_SENTENCE,
    field_id,
    rating_id,
)
from bot.messages.web_links import csrf_token, csrf_valid, link_hash, well_formed
from bot.services.live_view import LiveViews
from bot.services.web_answers import UpdatePage, UpdatePages, new_submission_id
from bot.signing import Signer
from handlers.web.live import live_routes
from handlers.web.oidc import OidcClient, sign_in_routes

log = logging.getLogger(__name__)

MAX_BODY = 256 * 1024
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_STATUS_WORDS = {
    "overdue": "Overdue",
    "at_risk": "At risk",
    "due_soon": "Due soon",
    "on_track": "On track",
    "achieved": "Achieved",
    "no_date": "No date",
}

Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def trusted_networks(setting: str) -> Networks:
    """TRUSTED_PROXIES as networks (settings have checked each part)."""
    return [
        ipaddress.ip_network(part.strip(), strict=False)
        for part in setting.split(",")
        if part.strip()
    ]


def _trusted(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(peer: str | None, forwarded_for: str | None, trusted: Networks) -> str:
    """Who is asking: the peer, or when the peer is a trusted proxy, the nearest address in
    X-Forwarded-For that is not one (what a client writes there itself comes before it)."""
    client = peer or "unknown"
    if not _trusted(client, trusted) or not forwarded_for:
        return client
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        client = hop
        if not _trusted(hop, trusted):
            break
    return client


class Throttle:
    """Unknown tokens per client: after `allowed` within `window`, that client's unknown
    tokens are answered 429 until the window has passed. Memory only, per process."""

    def __init__(
        self,
        clock: Clock,
        *,
        allowed: int = 10,
        window: timedelta = timedelta(minutes=10),
        max_clients: int = 10_000,
    ) -> None:
        self.clock = clock
        self.allowed = allowed
        self.window = window
        self.max_clients = max_clients
        self._failures: dict[str, deque[datetime]] = {}

    def _recent(self, client: str) -> deque[datetime]:
        now = self.clock()
        seen = self._failures.get(client)
        if seen is None:
            return deque()
        while seen and now - seen[0] >= self.window:
            seen.popleft()
        if not seen:
            del self._failures[client]
        return seen

    def wait(self, client: str) -> int:
        """Seconds this client must wait before another unknown token is looked at: 0 when
        it may go on."""
        seen = self._recent(client)
        if len(seen) < self.allowed:
            return 0
        return max(1, int((seen[0] + self.window - self.clock()).total_seconds()) + 1)

    def failed(self, client: str) -> None:
        if client not in self._failures and len(self._failures) >= self.max_clients:
            self._failures.pop(next(iter(self._failures)))  # the oldest client first
        self._failures.setdefault(client, deque()).append(self.clock())


def _secure(headers: Any, path: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if path.startswith(("/u/", "/v/", "/live", "/auth/")):
        headers["Cache-Control"] = "no-store"


def delegate_options(people: Sequence[tuple[str, str]], selected: str | None) -> Markup:
    """The delegate select's options, one line each, `selected` marked: everyone on the
    plan, so hundreds of them, joined here at a fraction of a template loop's cost."""
    return Markup(
        "".join(
            f'<option value="{escape(key)}"{" selected" if key == selected else ""}>'
            f"{escape(name)}</option>\n"
            for key, name in people
        )
    )


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("handlers.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        field_id=field_id,
        rating_id=rating_id,
        date_hint=DATE_HINT,
        evidence_question=EVIDENCE_QUESTION,
        evidence_hint=EVIDENCE_HINT_SENTENCE,
        status_words=_STATUS_WORDS,
        delegate_options=delegate_options,
    )
    return env


_STYLESHEET = resources.files("handlers.web").joinpath("static/pulse.css").read_bytes()


def build_web_app(
    pages: UpdatePages,
    *,
    signer: Signer,
    clock: Clock,
    trusted_proxies: str = "",
    slack: web.Application | None = None,
    teams: web.Application | None = None,
    throttle: Throttle | None = None,
    live: LiveViews | None = None,
    sign_in: OidcClient | None = None,
    base_url: str = "",
) -> web.Application:
    """The server's application: the update pages at `/u/{token}`, their stylesheet, with
    `live` the coordinators' live view at `/v/{token}` (handlers/web/live.py), with `slack`
    its events app mounted at `/slack`, and with `teams` the bot's endpoint at
    `/api/messages`."""
    env = _environment()
    trusted = trusted_networks(trusted_proxies)
    limiter = throttle or Throttle(clock)

    @web.middleware
    async def headers(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # a 404 or 405 from the router: same headers
            _secure(exc.headers, request.path)
            raise
        _secure(response.headers, request.path)
        return response

    def render(name: str, status: int = 200, **context: Any) -> web.Response:
        body = env.get_template(name).render(**context)
        return web.Response(status=status, text=body, content_type="text/html", charset="utf-8")

    def gone(request: web.Request) -> web.Response:
        client = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)
        limiter.failed(client)
        return render("gone.html.j2", status=404, title="This link no longer works")

    def too_many(wait: int) -> web.Response:
        response = render("slow.html.j2", status=429, title="Too many attempts", wait=wait)
        response.headers["Retry-After"] = str(wait)
        return response

    def token_of(request: web.Request) -> str | None:
        """The hash of the request's token, or None when it is not one we could issue."""
        token = request.match_info.get("token", "")
        return link_hash(token, signer) if well_formed(token) else None

    def throttled(request: web.Request) -> int:
        client = client_address(request.remote, request.headers.get("X-Forwarded-For"), trusted)
        return limiter.wait(client)

    def form_page(
        page: UpdatePage,
        digest: str,
        *,
        status: int = 200,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        absence_errors: Mapping[str, str] | None = None,
        message: str = "",
    ) -> web.Response:
        errors = errors or {}
        absence_errors = absence_errors or {}
        problems = {**errors, **absence_errors}
        title = f"Update your milestones: {page.plan_title}"
        return render(
            "update.html.j2",
            status=status,
            title=("Error: " if problems else "") + title,
            heading=title,
            page=page,
            values=values if values is not None else page.values(),
            errors=errors,
            absence_errors=absence_errors,
            problems=problems,
            message=message,
            csrf=csrf_token(digest, signer),
            submission=new_submission_id(),
        )

    async def show(request: web.Request) -> web.StreamResponse:
        digest = token_of(request)
        page = await pages.page(digest) if digest is not None else None
        if page is None:
            wait = throttled(request)
            return too_many(wait) if wait else gone(request)
        return form_page(page, digest or "")

    async def submit(request: web.Request) -> web.StreamResponse:
        digest = token_of(request)
        try:
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        except ValueError:
            return render("refused.html.j2", status=400, title="This form could not be read")
        if digest is None:
            wait = throttled(request)
            return too_many(wait) if wait else gone(request)
        if not csrf_valid(digest, form.get("csrf", ""), signer):
            return render("refused.html.j2", status=403, title="This form could not be accepted")
        if form.get("form") == "absence":
            done = await pages.set_absence(digest, form)
            if done is None:
                wait = throttled(request)
                return too_many(wait) if wait else gone(request)
            values = {**done.page.values(), **(done.absence.values if done.errors else {})}
            return form_page(
                done.page,
                digest,
                status=400 if done.errors else 200,
                values=values,
                absence_errors=done.errors,
                message=done.message,
            )
        submitted = await pages.submit(digest, form)
        if submitted is None:
            wait = throttled(request)
            return too_many(wait) if wait else gone(request)
        if submitted.errors:
            return form_page(
                submitted.page,
                digest,
                status=400,
                values={**submitted.page.values(), **submitted.draft.values},
                errors=submitted.errors,
            )
        return render(
            "recorded.html.j2",
            title=f"Update recorded: {submitted.page.plan_title}",
            page=submitted.page,
            submitted=submitted,
        )

    async def stylesheet(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=_STYLESHEET,
            content_type="text/css",
            charset="utf-8",
            headers={"Cache-Control": "public, max-age=3600"},
        )

    async def home(request: web.Request) -> web.StreamResponse:
        return render("home.html.j2", title="Plan Pulse", root="")

    app = web.Application(middlewares=[headers], client_max_size=MAX_BODY)
    app.router.add_get("/", home)
    app.router.add_get("/static/pulse.css", stylesheet)
    app.router.add_get("/u/{token}", show)
    app.router.add_post("/u/{token}", submit)
    if live is not None:

        def refuse(request: web.Request) -> web.Response:
            wait = throttled(request)
            return too_many(wait) if wait else gone(request)

        app.router.add_routes(live_routes(live, signer=signer, render=render, refuse=refuse))
        if sign_in is not None:
            app.router.add_routes(
                sign_in_routes(sign_in, live, signer=signer, base_url=base_url, render=render)
            )
    if slack is not None:
        app.add_subapp("/slack", slack)
    if teams is not None:
        app.add_subapp("/api", teams)
    return app


class WebServer:
    """`build_web_app` served on host:port, with no access log (paths hold link tokens)."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])
        log.info("web: listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
