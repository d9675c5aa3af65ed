"""Microsoft Teams: digests posted to channels through Workflows webhooks (`workflows`)."""
