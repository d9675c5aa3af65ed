"""Fixtures for the integration tier: a real Dovecot (tests/dovecot.py) besides the
databases of tests/conftest.py."""

from tests.dovecot import dovecot, mailbox

__all__ = ["dovecot", "mailbox"]
