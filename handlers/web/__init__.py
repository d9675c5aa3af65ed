"""The web channel: a lead's update page, reached by a link in their prompt (issue 14)."""
