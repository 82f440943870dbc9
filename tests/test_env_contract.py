"""The Gymnasium contract users build on: make, reset/step, spaces, checker, vector envs."""

import copy
import subprocess
import sys
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import envfactory_gym
from envfactory_gym.actions import format_tool_call
from tests.conftest import ENV_ID


def test_make_without_import_uses_module_prefix():
    code = (
        "import gymnasium as gym; env = gym.make('envfactory_gym:envfactory/Airline-v0'); "
        "obs, info = env.reset(seed=0); print(type(obs).__name__, len(info['tools']))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["str", "14"]


def test_import_stays_light():
    code = (
        "import sys, envfactory_gym; "
        "print(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_env_checker_passes_without_warnings():
    env = gym.make(ENV_ID)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


def test_reset_gives_instruction_messages_and_tools(env):
    obs, info = env.reset(seed=0)
    messages = info["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "Policy" in messages[0]["content"]
    assert messages[1]["content"] == obs
    names = {tool["function"]["name"] for tool in info["tools"]}
    assert {"book_reservation", "cancel_reservation", "get_user_details"} <= names
    assert env.observation_space.contains(obs)


def test_reset_by_task_id_and_split(env):
    _, info = env.reset(options={"task_id": "airline-book-00"})
    assert info["task_id"] == "airline-book-00"
    for seed in range(20):
        _, info = env.reset(seed=seed, options={"split": "test"})
        assert env.unwrapped.task.split == "test"
    with pytest.raises(KeyError):
        env.reset(options={"task_id": "no-such-task"})


def test_same_seed_same_episode():
    def play(seed):
        env = gym.make(ENV_ID)
        obs, info = env.reset(seed=seed)
        trace = [obs]
        for action in ["Could you confirm your user id?", "Thanks, all done."]:
            obs, reward, terminated, truncated, info = env.step(action)
            trace.append((obs, reward, terminated, truncated))
            if terminated or truncated:
                break
        return trace, info["messages"]

    assert play(3) == play(3)
    first_messages = {play(seed)[0][0] for seed in range(8)}
    assert len(first_messages) > 1, "different seeds should reach different tasks"


def test_tool_turn_records_openai_messages(env):
    env.reset(options={"task_id": "airline-gift_card_balance-00"})
    task = env.unwrapped.task
    call = task.calls[0]
    obs, reward, terminated, truncated, info = env.step(
        "<think>look the user up</think>" + format_tool_call(call.name, call.arguments)
    )
    assert obs.startswith("<tool_response>") and task.user_facts["user_id"] in obs
    assistant, tool_message = info["new_messages"]
    assert assistant["tool_calls"][0]["function"] == {
        "name": call.name,
        "arguments": call.arguments,
    }
    assert "think" not in assistant["content"]
    assert tool_message["role"] == "tool" and tool_message["name"] == call.name
    assert (reward, terminated, truncated) == (0.0, False, False)


def test_final_answer_ends_episode_with_breakdown(env):
    env.reset(options={"task_id": "airline-gift_card_balance-00"})
    obs, reward, terminated, truncated, info = env.step("I cannot help with that.")
    assert terminated and not truncated
    breakdown = info["reward_breakdown"]
    assert {"trace", "state", "outputs", "penalty", "total", "tau"} <= breakdown.keys()
    assert reward == breakdown["total"] and info["success"] is False
    with pytest.raises(gym.error.ResetNeeded):
        env.step("more")


def test_turn_limit_truncates():
    env = gym.make(ENV_ID, max_turns=2)
    env.reset(options={"task_id": "airline-book-00"})
    call = '<tool_call>{"name": "list_all_airports", "arguments": {}}</tool_call>'
    assert env.step(call)[3] is False
    obs, reward, terminated, truncated, info = env.step(call)
    assert truncated and not terminated and "reward_breakdown" in info


def test_scripted_user_answers_questions_then_lets_agent_finish(env):
    env.reset(options={"task_id": "airline-cancel-00"})
    obs, _, terminated, _, _ = env.step("Could you tell me your reason for cancelling?")
    assert not terminated and "reason" in obs.lower()
    obs, _, terminated, _, _ = env.step("Shall I proceed with the cancellation?")
    assert not terminated and obs == "Yes, please go ahead."
    assert env.step("It is cancelled.")[2] is True


def test_ansi_render_shows_conversation():
    env = gym.make(ENV_ID, render_mode="ansi")
    env.reset(options={"task_id": "airline-gift_card_balance-00"})
    env.step('<tool_call>{"name": "list_all_airports", "arguments": {}}</tool_call>')
    text = env.render()
    assert "[user] Hello, my user id is" in text
    assert "-> list_all_airports({})" in text and "[tool[list_all_airports]]" in text


def test_vector_env_steps_in_lockstep():
    envs = gym.make_vec(ENV_ID, num_envs=4)
    obs, info = envs.reset(seed=0)
    assert len(obs) == 4 and all(isinstance(o, str) for o in obs)
    obs, rewards, terminated, truncated, info = envs.step(["Thanks, goodbye."] * 4)
    assert terminated.all() and rewards.shape == (4,)
    envs.close()


def test_reward_config_from_make_kwargs():
    env = gym.make(ENV_ID, reward_config={"tau": 0.2})
    assert env.unwrapped.reward_config.tau == 0.2
    assert env.unwrapped.reward_config.format_penalty == 0.1


VECTOR_MODES = [
    ("sync", {}),
    ("sync", {"autoreset_mode": "SameStep"}),
    ("async", {}),  # shared memory, the default
    ("async", {"autoreset_mode": "SameStep"}),
    ("async", {"shared_memory": False, "autoreset_mode": "SameStep"}),
]


@pytest.mark.parametrize("mode,kwargs", VECTOR_MODES)
def test_vector_envs_play_every_episode_with_options(mode, kwargs):
    """Several scripted episodes in a row, each reset with options: every one scores 1.0 and
    sees the same observations as a plain env (an autoreset flag left over from the last
    episode would drop a step and switch tasks)."""
    package = envfactory_gym.load_package("airline")
    tasks = [
        package.task(t) for t in ("airline-add_bags-00", "airline-cancel-01", "airline-book-02")
    ]
    single = gym.make(ENV_ID)
    envs = gym.make_vec(ENV_ID, num_envs=2, vectorization_mode=mode, vector_kwargs=kwargs)
    for task in tasks:
        script = [format_tool_call(c.name, c.arguments) for c in task.calls]
        script.append("Done: " + "; ".join(task.outputs))
        expected = [single.reset(options={"task_id": task.id})[0]]
        expected += [single.step(action)[0] for action in script]
        obs, _ = envs.reset(options={"task_id": task.id})
        seen = [tuple(obs)]
        for action in script:
            obs, rewards, terminated, truncated, _ = envs.step((action, action))
            seen.append(tuple(obs))
        assert rewards.tolist() == [1.0, 1.0] and terminated.all(), (mode, kwargs, task.id)
        if kwargs.get("autoreset_mode") != "SameStep":  # SameStep shows the next reset's obs
            assert seen == [(o, o) for o in expected]
    envs.close()


def test_async_shared_memory_carries_any_text():
    from gymnasium.vector.utils import (
        create_shared_memory,
        read_from_shared_memory,
        write_to_shared_memory,
    )

    from envfactory_gym.spaces import AnyText, SharedTexts

    space = AnyText(1000)
    memory = create_shared_memory(space, n=2)
    texts = read_from_shared_memory(space, memory, n=2)
    for text in ("ünïcødé ✈ \n" * 80, ""):
        write_to_shared_memory(space, 1, text, memory)
        assert isinstance(texts, SharedTexts) and texts[1] == text
    assert copy.deepcopy(texts) == ("", "")
    with pytest.raises(ValueError, match="does not fit"):
        write_to_shared_memory(space, 0, "x" * 4000 + "€", memory)


def test_calls_per_turn_are_capped(env):
    env.reset(options={"task_id": "airline-gift_card_balance-00"})
    call = '<tool_call>{"name": "list_all_airports", "arguments": {}}</tool_call>'
    obs, *_ = env.step(call * 20)
    assert obs.count("<tool_response>") == 16 and "at most 16 tool calls" in obs
    assert sum(c.format_error for c in env.unwrapped.calls) == 4
