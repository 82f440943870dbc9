"""The action parser: Qwen3/Hermes tool calls, thinking stripped, never an exception."""

from hypothesis import given, settings
from hypothesis import strategies as st

from envfactory_gym.actions import _scan, format_tool_call, parse_action


def test_several_calls_and_a_message():
    text = (
        "<think>plan</think>Let me check."
        + format_tool_call("a", {"x": 1})
        + "\n"
        + format_tool_call("b", {})
    )
    parsed = parse_action(text)
    assert [(c.name, c.arguments, c.error) for c in parsed.calls] == [
        ("a", {"x": 1}, None),
        ("b", {}, None),
    ]
    assert parsed.message == "Let me check."


def test_plain_text_is_a_message():
    parsed = parse_action("  Your flight is on time.  ")
    assert parsed.calls == [] and parsed.message == "Your flight is on time."


def test_reasoning_prefix_and_unclosed_think_are_dropped():
    assert parse_action("reasoning...</think>Hello").message == "Hello"
    assert parse_action("Hello<think>never closed").message == "Hello"


def test_arguments_as_json_string_are_accepted():
    call = parse_action('<tool_call>{"name": "f", "arguments": "{\\"a\\": 2}"}</tool_call>').calls[
        0
    ]
    assert call.arguments == {"a": 2} and call.error is None


def test_unclosed_tool_call_is_a_malformed_call():
    parsed = parse_action('ok <tool_call>{"name": "f", "arguments": {}}')
    assert parsed.message == "ok" and parsed.calls[0].error and "closing" in parsed.calls[0].error


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_parser_never_raises_on_any_text(text):
    parsed = parse_action(text)
    assert isinstance(parsed.message, str)


fragments = st.sampled_from(
    ["<tool_call>", "</tool_call>", "<think>", "</think>", "{", "}", '"name"', ":", '"arguments"',
     "[", "]", "null", '"f"', ",", "\\", "1e999", "\n"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(fragments, st.text(max_size=5)), max_size=30))
def test_parser_never_raises_on_tag_soup(parts):
    parsed = parse_action("".join(parts))
    for call in parsed.calls:
        assert (call.error is None) == isinstance(call.arguments, dict)


body_parts = st.sampled_from(
    ['{"name": "f", "arguments": {"a": 1}}', '"name"', '{"name": "f"', "\n", " ", "</tool_call>",
     '"arguments": "{}"', '"', "\\u0041", "[]", "}", "{", ","]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(body_parts, st.text(max_size=4)), max_size=8), st.integers(0, 2))
def test_the_one_call_shortcut_parses_as_the_full_scan(parts, max_calls):
    text = "<tool_call>" + "".join(parts) + "</tool_call>"
    assert parse_action(text, max_calls) == _scan(text, max_calls)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20), max_size=50))
def test_env_step_never_raises(env_actions):
    import gymnasium as gym

    env = gym.make("envfactory/Airline-v0", max_turns=60)
    env.reset(seed=0)
    for action in env_actions:
        _, _, terminated, truncated, _ = env.step(
            "<tool_call>" + action if len(action) % 3 == 0 else action + "?"
        )
        if terminated or truncated:
            break


def test_repeated_opening_tags_do_not_stall_the_parser():
    """A model stuck repeating a tag: quadratic parsing took tens of seconds on 20k tags."""
    import time

    for tag in ("<tool_call>", "<think>", "<tool_call></tool_call><think>"):
        start = time.perf_counter()
        parsed = parse_action(tag * 20_000)
        assert time.perf_counter() - start < 2.0
        assert isinstance(parsed.message, str)


def test_nested_and_mixed_blocks():
    parsed = parse_action(
        'a<think>x<tool_call>{"name": "no"}</tool_call></think>b' + format_tool_call("f", {})
    )
    assert parsed.message == "ab" and [c.name for c in parsed.calls] == ["f"]
