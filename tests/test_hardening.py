"""Every observation and message log is valid and bounded; bad input fails loudly or becomes a
format error, never a crash or a silently ended episode; envs pickle mid-episode."""

import copy
import json
import pickle

import cloudpickle
import gymnasium as gym
import pytest

from envfactory_gym.actions import format_tool_call, parse_action
from envfactory_gym.env import MAX_TOOL_OUTPUT
from envfactory_gym.tools import MAX_LIST_ITEMS

TASK = "airline-gift_card_balance-00"


def assert_valid_chat(messages):
    """OpenAI chat rules: every tool call has an id and is answered exactly once, right after
    its assistant turn; every tool message answers a call; all of it is strict JSON in UTF-8."""
    json.dumps(messages, allow_nan=False, ensure_ascii=False).encode("utf-8")
    pending: list[str] = []
    for message in messages:
        assert message["role"] in ("system", "user", "assistant", "tool")
        assert isinstance(message.get("content"), str)
        if message["role"] == "tool":
            assert pending and message["tool_call_id"] == pending.pop(0), message
            continue
        assert not pending, f"calls {pending} were never answered"
        if message["role"] == "assistant" and "tool_calls" in message:
            assert message["tool_calls"], "an empty tool_calls list is not valid chat"
            for call in message["tool_calls"]:
                assert call["type"] == "function" and call["id"]
                assert isinstance(call["function"]["name"], str) and call["function"]["name"]
                assert isinstance(call["function"]["arguments"], dict)
                pending.append(call["id"])
    assert not pending


@pytest.fixture
def started(env):
    env.reset(options={"task_id": TASK})
    return env


# ----- valid UTF-8 -----------------------------------------------------------------------------
def test_lone_surrogates_never_reach_an_observation_or_the_log(started):
    actions = [
        '<tool_call>{"name": "x\ud83d", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_user_details", "arguments": {"user_id": "\\ud83d"}}</tool_call>',
        "Is my balance \udc00 ready?",
    ]
    for action in actions:
        obs, *_, info = started.step(action)
        obs.encode("utf-8")
        assert_valid_chat(started.unwrapped.conversation())


# ----- bounded ---------------------------------------------------------------------------------
def test_huge_names_and_many_calls_stay_inside_the_observation_space(started):
    name = "n" * 60_000
    action = "".join(f'<tool_call>{{"name": "{name}", "arguments": {{}}}}</tool_call>' for _ in
                     range(17))  # fmt: skip
    obs, *_, info = started.step(action)
    assert started.observation_space.contains(obs) and len(obs) < 17 * (MAX_TOOL_OUTPUT + 100)
    assert len(obs) < 20_000, "an unknown name is echoed cut short, not whole"
    assert len(json.dumps(info["new_messages"])) < 200_000
    assert_valid_chat(started.unwrapped.conversation())


def test_only_what_can_run_is_parsed():
    block = format_tool_call("list_all_airports", {})
    parsed = parse_action(block * 10_000, max_calls=16)
    assert len(parsed.calls) == 16 and parsed.skipped == 9_984


def test_error_observations_are_cut(started):
    tool = started.unwrapped.tools["get_user_details"]
    huge = "u" * 200_000
    obs, *_ = started.step(format_tool_call(tool.name, {"user_id": huge}))
    assert len(obs) <= MAX_TOOL_OUTPUT + 100


def test_list_arguments_are_bounded(started, package):
    book = package.tools["update_reservation_flights"].parameters["properties"]["flights"]
    assert book["maxItems"] == 6
    for tool in package.tools.values():
        for name, prop in tool.parameters.get("properties", {}).items():
            if prop.get("type") == "array":
                assert 0 < prop.get("maxItems", 0) <= MAX_LIST_ITEMS, (tool.name, name)
    segments = [{"flight_number": "EF100", "date": "2024-05-20"}] * 20_000
    arguments = {"reservation_id": "X", "cabin": "economy", "flights": segments, "payment_id": "p"}
    obs, *_ = started.step(format_tool_call("update_reservation_flights", arguments))
    assert "at most 6" in obs and started.unwrapped.calls[-1].format_error


# ----- the chat log ----------------------------------------------------------------------------
def test_the_log_is_valid_chat_after_every_kind_of_turn(started):
    actions = [
        "<tool_call>{not json}</tool_call>",
        '<tool_call>{"name": "no_such_tool", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "get_user_details", "arguments": {"user_id": 5}}</tool_call>',
        '<tool_call>{"name": "calculate", "arguments": {"expression": NaN}}</tool_call>',
        '<tool_call>{"name": "get_user_details"',
        format_tool_call("list_all_airports", {}) * 17,
        "",
        "<think>only thinking</think>",
        format_tool_call("get_user_details", {"user_id": "mia_li_3668"}),
    ]
    for action in actions:
        *_, info = started.step(action)
        assert_valid_chat(started.unwrapped.conversation())
    calls = [
        c
        for m in started.unwrapped.conversation()
        if m["role"] == "assistant"
        for c in m.get("tool_calls", [])
    ]
    malformed = calls[0]["function"]
    assert malformed == {"name": "invalid_tool_call", "arguments": {"raw": "{not json}"}}


def test_nan_and_infinity_are_format_errors(started):
    obs, *_ = started.step('<tool_call>{"name": "calculate", "arguments": {"expression": Infinity}}'
                           "</tool_call>")  # fmt: skip
    assert "not valid JSON" in obs and started.unwrapped.calls[-1].format_error


def test_handed_out_messages_and_tools_are_copies(started, env):
    first = format_tool_call("get_user_details", {"user_id": "mia_li_3668"})
    *_, info = started.step(first)
    conversation = started.unwrapped.conversation()
    for message in [*info["new_messages"], *conversation]:
        for call in message.get("tool_calls", []):
            call["function"]["arguments"] = json.dumps(call["function"]["arguments"])
        message["content"] = "changed"
    conversation.append({"role": "user", "content": "injected"})
    *_, again = started.step(first)
    log = started.unwrapped.conversation()
    assert isinstance(log[2]["tool_calls"][0]["function"]["arguments"], dict)
    assert log[2]["content"] != "changed" and "injected" not in json.dumps(log)

    _, reset_info = gym.make("envfactory/Airline-v0").reset(seed=0)
    reset_info["tools"][0]["function"]["name"] = "hijacked"
    reset_info["tools"].clear()
    _, other = gym.make("envfactory/Airline-v0").reset(seed=0)
    assert other["tools"] and other["tools"][0]["function"]["name"] != "hijacked"


# ----- thinking --------------------------------------------------------------------------------
def test_think_tags_inside_arguments_are_text(started):
    summary = "user wrote </think> and <think> in a message"
    obs, _, terminated, *_ = started.step(
        format_tool_call("transfer_to_human_agents", {"summary": summary})
    )
    assert not terminated and "Transfer successful" in obs
    assert started.unwrapped.calls[-1].ok and started.unwrapped.calls[-1].arguments == {
        "summary": summary
    }


def test_calls_inside_thinking_are_not_run():
    parsed = parse_action(
        "<think>maybe " + format_tool_call("cancel_reservation", {"reservation_id": "A"})
        + "</think>Which reservation?"
    )  # fmt: skip
    assert parsed.calls == [] and parsed.message == "Which reservation?"
    prefix = parse_action(
        format_tool_call("a", {}) + " reasoning </think>" + format_tool_call("b", {})
    )
    assert [c.name for c in prefix.calls] == ["b"]


# ----- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("action", [{"name": "x"}, b"hello", None, 42])
def test_non_string_actions_raise_type_error(started, action):
    with pytest.raises(TypeError, match="raw text"):
        started.step(action)


@pytest.mark.parametrize("action", ["", "   ", "<think>let me think</think>", "<think>unclosed"])
def test_empty_messages_are_format_errors_not_the_end(started, action):
    obs, reward, terminated, truncated, info = started.step(action)
    assert not terminated and "empty" in obs
    assert started.unwrapped.calls[-1].format_error
    assert info["new_messages"] == [
        {"role": "assistant", "content": ""},
        {"role": "user", "content": obs},
    ]


def test_unknown_reset_options_and_task_ids_are_named(env):
    with pytest.raises(ValueError, match="valid options: task_id, split"):
        env.reset(options={"task": TASK})
    with pytest.raises(KeyError, match="did you mean airline-gift_card_balance-00"):
        env.reset(options={"task_id": "airline-gift_card_balance_00"})
    with pytest.raises(ValueError, match="split"):
        env.reset(options={"split": "validation"})


# ----- pickling --------------------------------------------------------------------------------
@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads),
                                         (cloudpickle.dumps, cloudpickle.loads),
                                         (copy.deepcopy, lambda x: x)])  # fmt: skip
def test_an_env_round_trips_mid_episode(dumps, loads):
    env = gym.make("envfactory/Airline-v0")
    env.reset(seed=1, options={"task_id": "airline-cancel_and_add_bag-00"})
    task = env.unwrapped.task
    actions = [format_tool_call(c.name, c.arguments) for c in task.calls]
    for action in actions[:4]:
        env.step(action)
    twin = loads(dumps(env))
    assert twin.unwrapped.db.conn is not env.unwrapped.db.conn
    assert twin.unwrapped.state_digest() == env.unwrapped.state_digest()
    finish = [*actions[4:], "Done: " + "; ".join(task.outputs)]
    endings = []
    for copy_ in (env, twin):
        for action in finish:
            obs, reward, terminated, truncated, info = copy_.step(action)
        endings.append((obs, reward, terminated, info["messages"], info["reward_breakdown"]))
    assert endings[0] == endings[1] and endings[0][1] == 1.0
    twin.reset()
    assert twin.unwrapped.db.diff() == {}


def test_tools_pickle_by_reference(package):
    tool = package.tools["book_reservation"]
    assert pickle.loads(pickle.dumps(tool)) is tool
    assert len(pickle.dumps(tool)) < 300


def test_a_read_tool_that_writes_is_caught(env, package):
    from envfactory_gym.replay import replay
    from envfactory_gym.tasks import ToolCall
    from envfactory_gym.tools import Tool

    def sneaky(db, user_id: str) -> str:
        """Look a user up (and, wrongly, change them)."""
        db.execute("UPDATE users SET membership = 'gold' WHERE user_id = ?", (user_id,))
        return "ok"

    env.reset(options={"task_id": TASK})
    user = env.unwrapped.task.user_facts["user_id"]
    env.unwrapped.tools = {**package.tools, "sneaky": Tool(sneaky, kind="read")}
    obs, *_ = env.step(format_tool_call("sneaky", {"user_id": user}))
    assert "kind='read' but changed the database" in obs
    assert any(v.startswith("users ") for v in env.unwrapped.score().violations)
    package.tools["sneaky"] = Tool(sneaky, kind="read")
    try:
        with pytest.raises(ValueError, match="not a write tool but wrote"):
            replay(package, [ToolCall(name="sneaky", arguments={"user_id": user})])
    finally:
        del package.tools["sneaky"]
