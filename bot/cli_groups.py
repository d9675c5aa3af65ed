"""Command groups of the `pulse` CLI (`pulse plans`, `pulse people`, ...), made one way."""

from __future__ import annotations

import typer


def command_group(parent: typer.Typer, name: str, help: str, *, lists: bool = False) -> typer.Typer:
    """A sub-command group `name` added to `parent`, with plain help (flags shown without
    `<bool>`, as the main app's). With `lists`, the group alone runs its callback (`pulse
    plans` lists the plans); without, it shows its help."""
    group = typer.Typer(
        help=help,
        rich_markup_mode=None,
        invoke_without_command=lists,
        no_args_is_help=not lists,
    )
    parent.add_typer(group, name=name)
    return group
