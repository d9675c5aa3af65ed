"""Plan Pulse: the composition root (settings, wiring, CLI), the use-cases in `bot.services`,
what we say in `bot.messages`, and the pure core in `bot.domain`."""
