"""Slack in and out: the bolt listeners, the HTTP guard in front of them, and the transport
that posts what the outbox holds."""
