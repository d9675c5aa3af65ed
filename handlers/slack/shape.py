"""The shape of a Slack payload, checked before bolt sees it (RELIABILITY.md scenario 7).

Bolt's request parsing and our listeners read fields of a payload by name and take their
types on trust (`body["actions"][0]`, `"callback_id" in body["view"]`, `user.get("id")`).
A signed payload whose fields have other types would raise inside bolt, which answers 500
with a traceback in the log. So before bolt sees it, every field either of them reads
must have a type Slack sends; nesting deeper than any Slack payload is refused too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_PAYLOAD_DEPTH", "shape_problem"]

MAX_PAYLOAD_DEPTH = 32  # a modal's state is about 6 deep, a message's rich text about 10

_Types = tuple[type, ...]
_Spec = dict[str, "tuple[_Types, _Spec | None]"]

_TEXT: _Types = (str, type(None))
_OBJECT: _Types = (dict, type(None))
_LIST: _Types = (list, type(None))
_ID_OR_OBJECT: _Types = (str, dict, type(None))


def _texts(names: str) -> _Spec:
    """Text fields, named in one space-separated string."""
    return {name: (_TEXT, None) for name in names.split()}


_IDS = _texts("id team_id enterprise_id user_id name")
_OPTION: _Spec = _texts("value")
_ACTION: _Spec = {
    **_texts("type action_id block_id value action_ts selected_date"),
    "selected_option": (_OBJECT, _OPTION),
    "selected_options": (_LIST, _OPTION),
}
_BLOCK: _Spec = {
    **_texts("type block_id"),
    "accessory": (_OBJECT, {"options": (_LIST, _OPTION), "initial_option": (_OBJECT, _OPTION)}),
}
_MESSAGE: _Spec = {
    **_texts("type subtype ts thread_ts user bot_id channel_type"),
    "blocks": (_LIST, _BLOCK),
}
_EVENT: _Spec = {
    **_texts(
        "type subtype tab ts thread_ts channel_type team user_team bot_id "
        "function_execution_id bot_access_token enterprise_id team_id"
    ),
    "user": (_ID_OR_OBJECT, _IDS),
    "channel": (_ID_OR_OBJECT, _IDS),
    "item": (_OBJECT, _texts("channel ts type")),
    "message": (_OBJECT, _MESSAGE),
    "previous_message": (_OBJECT, _MESSAGE),
    "assistant_thread": (_OBJECT, _texts("channel_id thread_ts")),
    "view": (_OBJECT, None),
}
_VIEW: _Spec = {
    **_texts(
        "id type callback_id private_metadata hash team_id app_installed_team_id "
        "external_id root_view_id previous_view_id"
    ),
    "state": (_OBJECT, {"values": (_OBJECT, None)}),
}
_PAYLOAD: _Spec = {
    **_texts(
        "type token team_id enterprise_id user_id channel_id api_app_id trigger_id "
        "response_url thread_ts command text callback_id action_id action_ts "
        "function_execution_id bot_access_token challenge event_id context_team_id "
        "context_enterprise_id"
    ),
    "team": (_ID_OR_OBJECT, _IDS),
    "enterprise": (_ID_OR_OBJECT, _IDS),
    "user": (_OBJECT, _IDS),
    "channel": (_OBJECT, _IDS),
    "container": (_OBJECT, _texts("type channel_id message_ts view_id")),
    "message": (_OBJECT, _MESSAGE),
    "actions": (_LIST, _ACTION),
    "view": (_OBJECT, _VIEW),
    "event": (_OBJECT, _EVENT),
    "authorizations": (_LIST, _IDS),
    "response_urls": (_LIST, _texts("response_url block_id action_id channel_id")),
    "function_data": (_OBJECT, None),
}
# What bolt indexes without looking, per payload type: these must be there, non-empty.
_REQUIRED: dict[str, tuple[tuple[str, type], ...]] = {
    "block_actions": (("actions", list),),
    "interactive_message": (("actions", list),),
    "view_submission": (("view", dict),),
    "view_closed": (("view", dict),),
    "event_callback": (("event", dict),),
    "block_suggestion": (("action_id", str),),
}


def _too_deep(node: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(node, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return False


def _type_problem(node: dict[str, Any], spec: _Spec, where: str) -> str | None:
    for name, (types, inner) in spec.items():
        value = node.get(name)
        if not isinstance(value, types):
            return f"{where}{name} is {type(value).__name__}"
        if inner is None or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if isinstance(value, list) and not isinstance(item, dict):
                return f"{where}{name}[{index}] is {type(item).__name__}"
            if isinstance(item, dict):
                found = _type_problem(item, inner, f"{where}{name}.")
                if found is not None:
                    return found
    return None


def shape_problem(payload: dict[str, Any]) -> str | None:
    """Why bolt or our listeners could not read `payload` safely (a field of a type Slack
    never sends, a required field missing, nesting past `MAX_PAYLOAD_DEPTH`), or None."""
    if _too_deep(payload, MAX_PAYLOAD_DEPTH):
        return f"nested deeper than {MAX_PAYLOAD_DEPTH}"
    found = _type_problem(payload, _PAYLOAD, "")
    if found is not None:
        return found
    for name, kind in _REQUIRED.get(str(payload.get("type")), ()):
        value = payload.get(name)
        if not isinstance(value, kind) or not value:
            return f"{name} is missing"
    view = payload.get("view")
    if payload.get("type") in ("view_submission", "view_closed") and isinstance(view, dict):
        if not isinstance(view.get("callback_id"), str):
            return "view.callback_id is missing"
    event = payload.get("event")
    if isinstance(event, dict) and payload.get("type") == "event_callback":
        if not isinstance(event.get("type"), str):
            return "event.type is missing"
    values = ((view or {}).get("state") or {}).get("values") if isinstance(view, dict) else None
    if isinstance(values, dict):
        for block in values.values():
            if not isinstance(block, dict) or not all(isinstance(a, dict) for a in block.values()):
                return "view.state.values is not blocks of actions"
            for action in block.values():
                found = _type_problem(action, _ACTION, "view.state.values.")
                if found is not None:
                    return found
    return None
