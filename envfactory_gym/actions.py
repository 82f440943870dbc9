"""Parse a model's raw text into tool calls and a message, Qwen3/Hermes style. Never raises."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class ParsedCall:
    """One `<tool_call>` block: a call if it parsed, else the reason it did not."""

    name: str | None
    arguments: Any
    error: str | None = None
    raw: str = ""


@dataclass
class ParsedAction:
    """What the agent did in one turn: tool calls (maybe malformed) and/or text for the user."""

    message: str
    calls: list[ParsedCall] = field(default_factory=list)

    @property
    def is_tool_turn(self) -> bool:
        return bool(self.calls)


def _split_blocks(
    text: str, open_tag: str, close_tag: str
) -> tuple[list[str], list[tuple[str, bool]]]:
    """The text outside `open_tag...close_tag` blocks, and each block's body with whether it was
    closed (an unclosed block runs to the end). A linear scan: a model stuck repeating an
    opening tag cannot make parsing quadratic."""
    outside: list[str] = []
    bodies: list[tuple[str, bool]] = []
    position = 0
    while True:
        start = text.find(open_tag, position)
        if start < 0:
            outside.append(text[position:])
            return outside, bodies
        outside.append(text[position:start])
        body_start = start + len(open_tag)
        end = text.find(close_tag, body_start)
        if end < 0:
            bodies.append((text[body_start:], False))
            return outside, bodies
        bodies.append((text[body_start:end], True))
        position = end + len(close_tag)


def strip_thinking(text: str) -> str:
    """Remove `<think>` blocks, an unclosed one, and a reasoning prefix ending in `</think>`."""
    if "think>" not in text:
        return text
    text = "".join(_split_blocks(text, THINK_OPEN, THINK_CLOSE)[0])
    return text.rsplit(THINK_CLOSE, 1)[1] if THINK_CLOSE in text else text


def parse_action(text: Any) -> ParsedAction:
    """Split raw model output into tool calls and the plain-text message around them."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = strip_thinking(text)
    if CALL_OPEN not in text:
        return ParsedAction(message=text.strip())
    outside, bodies = _split_blocks(text, CALL_OPEN, CALL_CLOSE)
    calls = [_parse_call(body, closed) for body, closed in bodies]
    return ParsedAction(message="".join(outside).strip(), calls=calls)


def _parse_call(body: str, closed: bool = True) -> ParsedCall:
    raw = body.strip()
    if not closed:
        return ParsedCall(None, None, "tool call is missing its closing </tool_call> tag", raw)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return ParsedCall(None, None, f"tool call is not valid JSON ({exc})", raw)
    if not isinstance(payload, dict):
        return ParsedCall(None, None, "tool call must be a JSON object with 'name'", raw)
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return ParsedCall(None, None, "tool call has no 'name' string", raw)
    arguments = payload.get("arguments", payload.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            return ParsedCall(name, None, f"arguments of {name} are not a JSON object", raw)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ParsedCall(name, None, f"arguments of {name} must be a JSON object", raw)
    return ParsedCall(name, arguments, None, raw)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The Qwen3/Hermes text for one call, as a policy would emit it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"
