"""A person's Teams conversation with the bot: where their prompts go (issue 16)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TeamsConversation:
    """The 1:1 chat the bot may post to, as Teams gave it when the app was installed.

    Personal data: never logged; its `repr` says only that it is one."""

    teams_user_id: str
    conversation_id: str
    service_url: str
    tenant_id: str | None = None
    aad_object_id: str | None = None

    def __repr__(self) -> str:
        return "TeamsConversation(<personal data>)"
