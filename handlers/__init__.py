"""The channels, one folder each (`slack/`, `email/`, `web/`) and the plan-file readers
(`files/`): each reads its input, calls a service of `bot.services`, and renders the result."""
