"""Block Kit's published limits, checked as Slack checks them: a view or a message's blocks
that break one are refused by Slack (`invalid_arguments` / `invalid_blocks`), so the fake
Slack refuses them too, and tests can check a view an ack carries (`response_action:
update`), which never goes through the Web API.

Only the limits of the blocks and elements Plan Pulse sends; an unknown type is a problem.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

MAX_VIEW_BLOCKS = 100
MAX_MESSAGE_BLOCKS = 50

_KNOWN_BLOCKS = {"section", "input", "context", "divider", "header", "actions", "image"}
_KNOWN_ELEMENTS = {
    "plain_text_input",
    "static_select",
    "datepicker",
    "checkboxes",
    "button",
    "image",
    "plain_text",
    "mrkdwn",
}


def _text(where: str, node: object, limit: int) -> Iterator[str]:
    if not isinstance(node, Mapping) or node.get("type") not in ("plain_text", "mrkdwn"):
        yield f"{where}: not a text object"
        return
    text = node.get("text")
    if not isinstance(text, str) or not text:
        yield f"{where}: empty text"
    elif len(text) > limit:
        yield f"{where}: {len(text)} characters, over {limit}"


def _element(where: str, element: object) -> Iterator[str]:
    if not isinstance(element, Mapping):
        yield f"{where}: not an element"
        return
    kind = element.get("type")
    if kind not in _KNOWN_ELEMENTS:
        yield f"{where}: unknown element {kind!r}"
        return
    if len(str(element.get("action_id", ""))) > 255:
        yield f"{where}: action_id over 255 characters"
    if "placeholder" in element:
        yield from _text(f"{where}.placeholder", element["placeholder"], 150)
    if kind == "plain_text_input":
        top = element.get("max_length", 3000)
        if not isinstance(top, int) or not 1 <= top <= 3000:
            yield f"{where}: max_length {top!r} not within 1-3000"
        initial = element.get("initial_value")
        if isinstance(initial, str) and len(initial) > top:
            yield f"{where}: initial_value over max_length"
    if kind in ("static_select", "checkboxes"):
        options = element.get("options")
        most = 100 if kind == "static_select" else 10
        if not isinstance(options, list) or not 1 <= len(options) <= most:
            yield f"{where}: options not 1-{most}"
            options = []
        for n, option in enumerate(options):
            yield from _text(f"{where}.options[{n}]", option.get("text"), 75)
            if len(str(option.get("value", ""))) > 150:
                yield f"{where}.options[{n}]: value over 150 characters"
    if kind == "button":
        yield from _text(f"{where}.text", element.get("text"), 75)


def block_problems(blocks: object, *, most: int) -> list[str]:
    """What Slack would refuse in `blocks`, at most `most` of them; empty: valid."""
    if not isinstance(blocks, list):
        return ["blocks is not a list"]
    problems = []
    if len(blocks) > most:
        problems.append(f"{len(blocks)} blocks, over {most}")
    seen: set[str] = set()
    for n, block in enumerate(blocks):
        where = f"blocks[{n}]"
        if not isinstance(block, Mapping) or block.get("type") not in _KNOWN_BLOCKS:
            problems.append(f"{where}: unknown block")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not 1 <= len(block_id) <= 255:
                problems.append(f"{where}: block_id not 1-255 characters")
            elif block_id in seen:
                problems.append(f"{where}: block_id {block_id!r} used twice")
            seen.add(str(block_id))
        kind = block["type"]
        if kind == "section":
            fields = block.get("fields")
            if "text" in block or not fields:
                problems += _text(f"{where}.text", block.get("text"), 3000)
            if fields is not None:
                if not isinstance(fields, list) or not 1 <= len(fields) <= 10:
                    problems.append(f"{where}: fields not 1-10")
                    fields = []
                for m, item in enumerate(fields):
                    problems += _text(f"{where}.fields[{m}]", item, 2000)
            if "accessory" in block:
                problems += _element(f"{where}.accessory", block["accessory"])
        elif kind == "header":
            problems += _text(f"{where}.text", block.get("text"), 150)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
                problems.append(f"{where}: context elements not 1-10")
                elements = []
            for m, element in enumerate(elements):
                problems += _text(f"{where}.elements[{m}]", element, 3000)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not 1 <= len(elements) <= 25:
                problems.append(f"{where}: actions elements not 1-25")
                elements = []
            for m, element in enumerate(elements):
                problems += _element(f"{where}.elements[{m}]", element)
        elif kind == "input":
            problems += _text(f"{where}.label", block.get("label"), 2000)
            if "hint" in block:
                problems += _text(f"{where}.hint", block["hint"], 2000)
            problems += _element(f"{where}.element", block.get("element"))
    return problems


def view_problems(view: object) -> list[str]:
    """What Slack would refuse in a view (a modal or the App Home tab); empty: valid."""
    if not isinstance(view, Mapping):
        return ["the view is not an object"]
    problems = block_problems(view.get("blocks"), most=MAX_VIEW_BLOCKS)
    if view.get("type") == "modal":
        problems += _text("title", view.get("title"), 24)
        for button in ("submit", "close"):
            if button in view:
                problems += _text(button, view[button], 24)
        if len(str(view.get("private_metadata", ""))) > 3000:
            problems.append("private_metadata over 3000 characters")
        if len(str(view.get("callback_id", ""))) > 255:
            problems.append("callback_id over 255 characters")
    elif view.get("type") != "home":
        problems.append(f"unknown view type {view.get('type')!r}")
    return problems
