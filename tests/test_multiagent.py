"""The PettingZoo view: assistant and user are both policies; the user never sees tool output."""

import json

import pytest
from pettingzoo.test import api_test, parallel_api_test

import envfactory_gym
from envfactory_gym.actions import format_tool_call
from envfactory_gym.multiagent import ASSISTANT, USER, USER_STOP, env, parallel_env
from tests.conftest import ENV_ID

TASK = "airline-add_bags-00"


def test_aec_passes_pettingzoo_api_test():
    api_test(env(ENV_ID, max_turns=6), num_cycles=30)


def test_parallel_passes_pettingzoo_parallel_api_test():
    parallel_api_test(parallel_env(ENV_ID, max_turns=6), num_cycles=30)


def play_aec(user_replies):
    """The oracle as the assistant (asking first whether to proceed), a scripted user policy."""
    task = envfactory_gym.load_package("airline").task(TASK)
    aec = env(ENV_ID)
    aec.reset(options={"task_id": TASK})
    assistant_script = [
        "Could you confirm you want the bags added to that trip?",
        *[format_tool_call(c.name, c.arguments) for c in task.calls],
        "Done: " + "; ".join(task.outputs),
    ]
    replies = list(user_replies)
    seen_by_user = []
    for agent in aec.agent_iter():
        observation, reward, terminated, truncated, info = aec.last()
        if terminated or truncated:
            break  # the final rewards and infos are read before the agents are removed
        if agent == USER:
            seen_by_user.append(observation)
            aec.step(replies.pop(0))
        else:
            aec.step(assistant_script.pop(0))
    return aec, seen_by_user


def test_both_policies_play_a_task_to_full_reward():
    aec, seen_by_user = play_aec(["Yes, please add them.", USER_STOP])
    assert aec.rewards == {ASSISTANT: 1.0, USER: 1.0}
    assert all(aec.terminations.values()) and aec.infos[USER]["success"]
    assert seen_by_user[0] == "Could you confirm you want the bags added to that trip?"
    assert seen_by_user[1].startswith("Done:")


def test_the_user_never_sees_tool_output_or_ground_truth():
    aec, seen_by_user = play_aec(["Yes.", USER_STOP])
    task = envfactory_gym.load_package("airline").task(TASK)
    reservation = task.calls[1].arguments["reservation_id"]
    visible = json.dumps([seen_by_user, aec.infos[USER]])
    assert "<tool_response>" not in visible and reservation not in visible
    assert "calls" not in aec.infos[USER] and "expected_diff" not in visible
    assert task.instruction in aec.infos[USER]["brief"]


def test_the_users_reply_reaches_the_assistant():
    aec = env(ENV_ID)
    aec.reset(options={"task_id": TASK})
    aec.step("What is your user id?")
    assert aec.agent_selection == USER and aec.observe(USER) == "What is your user id?"
    aec.step("It is mia_li_3668, thanks.")
    assert aec.agent_selection == ASSISTANT
    assert aec.observe(ASSISTANT) == "It is mia_li_3668, thanks."
    assert aec.core.env.messages[-1] == {"role": "user", "content": "It is mia_li_3668, thanks."}


def test_parallel_counts_only_the_agent_whose_turn_it_is():
    par = parallel_env(ENV_ID)
    observations, infos = par.reset(options={"task_id": TASK})
    assert infos[ASSISTANT]["to_act"] == ASSISTANT and infos[USER]["brief"]
    observations, rewards, *_, infos = par.step({ASSISTANT: "Shall I go ahead?", USER: "ignored"})
    assert observations[USER] == "Shall I go ahead?" and infos[USER]["to_act"] == USER
    observations, rewards, terminations, *_ = par.step({ASSISTANT: "ignored", USER: USER_STOP})
    assert all(terminations.values()) and par.agents == []
    assert rewards[ASSISTANT] == rewards[USER] < 1.0  # nothing was done


def test_bad_user_action_is_a_clear_error():
    aec = env(ENV_ID)
    aec.reset(options={"task_id": TASK})
    aec.step("Anything else?")
    with pytest.raises(TypeError, match="reply"):
        aec.step({"text": "no"})
