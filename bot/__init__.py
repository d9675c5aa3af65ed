"""Plan Pulse: the composition root (settings, wiring, CLI) and the pure core in `bot.domain`."""
