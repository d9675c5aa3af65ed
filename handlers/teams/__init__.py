"""Microsoft Teams: digests posted to channels through Workflows webhooks (`workflows`), and
the bot that prompts leads in their 1:1 chats (`bot`, `answers`, `transport`, `package`)."""
