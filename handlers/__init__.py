"""Slack and email, in and out: payloads and messages turned into calls on the core."""
