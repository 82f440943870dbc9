"""Parse a model's raw text into tool calls and a message, Qwen3/Hermes style. Never raises.

One linear scan over the text:
- `<think>...</think>` blocks are reasoning and dropped (an unclosed one runs to the end); a
  `</think>` with no opener ends a reasoning prefix, which is dropped with everything before it;
- `<tool_call>...</tool_call>` blocks are calls. A block ends at the first `</tool_call>` outside
  a JSON string, so an argument may contain either tag; think tags inside a block are its text;
- everything else is the message to the user.
At most `max_calls` blocks are parsed; the rest are only counted (`ParsedAction.skipped`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from envfactory_gym.text import valid_json_value

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
MAX_RAW = 2_000
"""Characters of a malformed block kept in `ParsedCall.raw` (and so in the message log)."""

_TOP_LEVEL = re.compile(r"<think>|</think>|<tool_call>")
_QUOTE_OR_CLOSE = re.compile(r'"|</tool_call>')
_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)


@dataclass(slots=True)
class ParsedCall:
    """One `<tool_call>` block: a call if it parsed, else the reason it did not."""

    name: str | None
    arguments: Any
    error: str | None = None
    raw: str = ""


@dataclass(slots=True)
class ParsedAction:
    """What the agent did in one turn: tool calls (maybe malformed) and/or text for the user."""

    message: str
    calls: list[ParsedCall] = field(default_factory=list)
    skipped: int = 0
    """Tool-call blocks past `max_calls`, counted but not parsed."""

    @property
    def is_tool_turn(self) -> bool:
        return bool(self.calls)


def parse_action(text: str, max_calls: int = 16) -> ParsedAction:
    """Split raw model output into tool calls and the plain-text message around them."""
    if not isinstance(text, str):
        raise TypeError(f"an action is the model's text (str), got {type(text).__name__}")
    if (
        max_calls > 0
        and text.count("<") == 2
        and text.startswith(CALL_OPEN)
        and text.endswith(CALL_CLOSE)
    ):  # the usual turn, one call and nothing else: what `_scan` finds, without the scan
        return ParsedAction("", [_parse_call(text[len(CALL_OPEN) : -len(CALL_CLOSE)])])
    return _scan(text, max_calls)


def _scan(text: str, max_calls: int) -> ParsedAction:
    """`parse_action`'s one linear scan over the text (see the module doc)."""
    outside: list[str] = []
    calls: list[ParsedCall] = []
    skipped = 0
    position = 0
    while True:
        tag = _TOP_LEVEL.search(text, position)
        if tag is None:
            outside.append(text[position:])
            break
        outside.append(text[position : tag.start()])
        found = tag.group()
        if found == THINK_OPEN:
            end = text.find(THINK_CLOSE, tag.end())
            position = len(text) if end < 0 else end + len(THINK_CLOSE)
        elif found == THINK_CLOSE:  # the end of a reasoning prefix: drop all before it
            outside, calls, skipped = [], [], 0
            position = tag.end()
        elif len(calls) < max_calls:
            call, end = _next_call(text, tag.end())
            calls.append(call)
            position = len(text) if end < 0 else end + len(CALL_CLOSE)
        else:
            skipped += 1
            end = _call_end(text, tag.end())
            position = len(text) if end < 0 else end + len(CALL_CLOSE)
    return ParsedAction(message="".join(outside).strip(), calls=calls, skipped=skipped)


def _next_call(text: str, start: int) -> tuple[ParsedCall, int]:
    """The call whose body starts at `start`, and where its closing tag is. Fast path: the
    first closing tag ends a body that parses (a tag inside a string would leave it broken)."""
    end = text.find(CALL_CLOSE, start)
    if end >= 0:
        call = _parse_call(text[start:end])
        if call.error is None:
            return call, end
    string_aware = _call_end(text, start)
    if string_aware != end or end < 0:
        body = text[start : len(text) if string_aware < 0 else string_aware]
        call = _parse_call(body, closed=string_aware >= 0)
    return call, string_aware


def _call_end(text: str, start: int) -> int:
    """Index of the `</tool_call>` closing a block that starts at `start`: the first one outside
    a JSON string, else (unbalanced quotes) the first one at all; -1 if there is none."""
    position = start
    while True:
        found = _QUOTE_OR_CLOSE.search(text, position)
        if found is None:
            break
        if found.group() == CALL_CLOSE:
            return found.start()
        rest = _STRING_REST.match(text, found.end())
        if rest is None:  # an unterminated string: fall back to the first closing tag
            break
        position = rest.end()
    return text.find(CALL_CLOSE, start)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # made once: NaN, Infinity refused
_SCAN = _DECODER.scan_once


def _loads(raw: str) -> Any:
    """`json.loads` for a stripped text: the C scanner first (most calls are valid JSON, and the
    wrapper costs as much as the parse), the full decoder for the error message otherwise."""
    try:
        value, end = _SCAN(raw, 0)
    except (StopIteration, ValueError):
        end = -1
    if end == len(raw):
        return value
    return _DECODER.decode(raw)


def _parse_call(body: str, closed: bool = True) -> ParsedCall:
    raw = body.strip()
    kept = raw[:MAX_RAW]
    if not closed:
        return ParsedCall(None, None, "tool call is missing its closing </tool_call> tag", kept)
    try:
        payload = _loads(raw)
    except (ValueError, RecursionError) as exc:
        return ParsedCall(None, None, f"tool call is not valid JSON ({str(exc)[:200]})", kept)
    if not isinstance(payload, dict):
        return ParsedCall(None, None, "tool call must be a JSON object with 'name'", kept)
    if "\\u" in raw:  # a JSON escape can spell a lone surrogate: make every string valid
        payload = valid_json_value(payload)
    name = payload.get("name")
    if not isinstance(name, str) or not name:
        return ParsedCall(None, None, "tool call has no 'name' string", kept)
    arguments = payload.get("arguments", payload.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = valid_json_value(_loads(arguments)) if arguments.strip() else {}
        except (ValueError, RecursionError):
            return ParsedCall(name, None, "the arguments are not a JSON object", kept)
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return ParsedCall(name, None, "the arguments must be a JSON object", kept)
    return ParsedCall(name, arguments, None, kept)


def format_tool_call(name: str, arguments: dict[str, Any]) -> str:
    """The Qwen3/Hermes text for one call, as a policy would emit it."""
    payload = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return f"<tool_call>\n{payload}\n</tool_call>"
