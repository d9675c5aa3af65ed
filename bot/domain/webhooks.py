"""Teams Workflows webhook URLs: what a valid one looks like, and how one is shown.

A network's digest reaches its Teams channel through a Workflows flow "Post to a channel when
a webhook request is received". Its URL is the flow's trigger, signed by the `sig` query
parameter: whoever holds the URL can post to the channel. So a URL is

* checked for form when it is imported (`webhook_problem`): HTTPS, a host of Power Automate
  or Azure Logic Apps (where Workflows run), a signature. A plain-HTTP URL is accepted only
  on the loopback address, for a test endpoint on the same machine;
* shown only redacted (`redacted_webhook`): in listings, reports, checks and errors, never
  with its signature. Nothing else of ours prints or logs it.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qs, urlsplit

# The hosts Workflows run on: Power Automate's environments (new flows,
# `….environment.api.powerplatform.com`) and Azure Logic Apps' regions (older flows,
# `prod-NN.REGION.logic.azure.com`), in the public and government clouds.
WORKFLOWS_HOST_SUFFIXES = (
    ".api.powerplatform.com",
    ".api.powerplatform.us",
    ".logic.azure.com",
    ".logic.azure.us",
    ".powerautomate.com",
)
MAX_URL = 2048
HIDDEN = "sig=…"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_problem(url: str) -> str | None:
    """Why `url` cannot be a Workflows webhook, in a few words without the URL itself (it
    may hold a secret); None when its form is right. The flow itself is not contacted."""
    text = url.strip()
    if not text:
        return "the webhook URL is empty"
    if len(text) > MAX_URL:
        return f"the webhook URL is longer than {MAX_URL} characters"
    if any(c.isspace() for c in text):
        return "the webhook URL has spaces in it: copy it again from the flow's trigger"
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "the webhook URL is not a URL"
    if parts.scheme == "http" and _loopback(host):
        pass  # a test endpoint on this machine: nothing leaves it
    elif parts.scheme != "https":
        return "the webhook URL must start with https://"
    elif not host.endswith(WORKFLOWS_HOST_SUFFIXES):
        return (
            "the webhook URL's host is not one Workflows runs on "
            "(….api.powerplatform.com or ….logic.azure.com): copy the URL of the flow's "
            '"When a Teams webhook request is received" trigger'
        )
    if not parse_qs(parts.query).get("sig"):
        return "the webhook URL has no signature (sig=): copy the whole URL from the flow"
    return None


def redacted_webhook(url: str) -> str:
    """`url` as it may be shown: its scheme, host and path, with the query (where the
    signature is) left out; `(none)` for no URL."""
    text = url.strip()
    if not text:
        return "(none)"
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port and parts.port != 443 else ""
    except ValueError:
        return "(not a URL)"
    if not parts.scheme or not host:
        return "(not a URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}?{HIDDEN}"
