"""Text hygiene for everything the env hands out: valid UTF-8, bounded length."""

from __future__ import annotations

from typing import Any


def valid_text(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD, so it always encodes as UTF-8."""
    if text.isascii():  # the usual case, checked without encoding
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def valid_json_value(value: Any) -> Any:
    """A parsed JSON value with every string (keys included) made valid UTF-8."""
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, dict):
        return {valid_text(k): valid_json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid_json_value(v) for v in value]
    return value


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    note = f"... [{len(text) - limit} more characters cut]"
    return text[: max(0, limit - len(note))] + note


def quoted(name: str, limit: int = 80) -> str:
    """A name echoed back in an error message: repr'd and bounded."""
    return repr(name) if len(name) <= limit else repr(name[:limit]) + f"... ({len(name)} chars)"
