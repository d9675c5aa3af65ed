"""Fixtures for the integration tier: a real Dovecot (tests/dovecot.py) and the update pages
with a headless Chromium (tests/web.py), besides the databases of tests/conftest.py."""

from tests.dovecot import dovecot, mailbox
from tests.web import axe_source, browser, site

__all__ = ["axe_source", "browser", "dovecot", "mailbox", "site"]
