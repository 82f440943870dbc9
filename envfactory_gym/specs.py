"""Specs that name a model on the command line: `kind:TARGET?key=value&...` with typed options.

`envfactory eval --agent hf:...|openai:...` and `--user openai:...` both take this form. One
parser serves both, so an option is spelled and checked the same way wherever it appears.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

OptionKind = type | str
"""A converter for an option's text (`int`, `float`, `str`) or "bool" (1/0, true/false, yes/no,
on/off)."""


def parse_spec_options(
    spec: str, allowed: dict[str, OptionKind], what: str = "agent"
) -> tuple[str, dict[str, Any]]:
    """Split `kind:TARGET?key=value&...` into TARGET and typed options. An unknown key, a value
    of the wrong type or a malformed query raises ValueError naming the `what` and the spec."""
    body = spec.partition(":")[2]
    target, _, query = body.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"{what} {spec!r}: options go as ?key=value&key=value") from None
    options: dict[str, Any] = {}
    for key, raw in pairs:
        if key not in allowed:
            raise ValueError(
                f"{what} {spec!r}: unknown option {key!r}; known: {', '.join(sorted(allowed))}"
            )
        kind = allowed[key]
        try:
            options[key] = parse_bool(raw) if kind == "bool" else kind(raw)  # type: ignore[operator]
        except ValueError:
            raise ValueError(f"{what} {spec!r}: bad value {raw!r} for option {key!r}") from None
    return target, options


def parse_bool(raw: str) -> bool:
    """An option's yes or no: 1/0, true/false, yes/no, on/off (any case)."""
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def thinking_body(enabled: bool) -> dict[str, Any]:
    """The request's `extra_body` that turns Qwen3's thinking on or off: `chat_template_kwargs`,
    which vLLM, SGLang and `transformers serve` understand."""
    return {"chat_template_kwargs": {"enable_thinking": enabled}}
