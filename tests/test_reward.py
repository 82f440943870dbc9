"""The reward: trace with masks and tolerance, state from the diff, outputs, penalties, tau."""

import pytest

from envfactory_gym.actions import format_tool_call
from envfactory_gym.reward import (
    CallRecord,
    RewardConfig,
    compute_reward,
    outputs_stated,
    values_match,
)
from envfactory_gym.tasks import Task, ToolCall


def make_task(**overrides):
    fields = dict(
        id="t", split="train", kind="write", instruction="do it",
        calls=[ToolCall(name="pay", arguments={"amount": 100, "note": "n"}, masked=["note"])],
        outputs=["100"],
        expected_diff={"t": {"added": [{"id": 1}], "removed": [], "changed": []}},
    )  # fmt: skip
    fields.update(overrides)
    return Task(**fields)


GOOD_DIFF = {"t": {"added": [{"id": 1}], "removed": [], "changed": []}}


def test_masked_arguments_and_number_tolerance():
    calls = [
        CallRecord("pay", {"amount": 100.0000001, "note": "anything"}, ok=True, format_error=False)
    ]
    result = compute_reward(make_task(), calls, ["You paid $100."], GOOD_DIFF, RewardConfig())
    assert result.trace == 1.0 and result.outputs == 1.0 and result.total == 1.0 and result.success


def test_failed_calls_do_not_match_the_trace():
    calls = [CallRecord("pay", {"amount": 100, "note": ""}, ok=False, format_error=False)]
    result = compute_reward(make_task(), calls, ["100"], GOOD_DIFF, RewardConfig())
    assert result.trace == 0.0 and result.total == 0.5


def test_forbidden_side_effect_fails_state():
    extra = {"t": {"added": [{"id": 1}], "removed": [], "changed": []},
             "u": {"added": [], "removed": [{"id": 9}], "changed": []}}  # fmt: skip
    calls = [CallRecord("pay", {"amount": 100, "note": ""}, ok=True, format_error=False)]
    result = compute_reward(make_task(), calls, ["100"], extra, RewardConfig())
    assert result.state == 0.0 and result.total == 0.5 and not result.success


def test_doing_nothing_fails_a_write_task_and_a_refusal():
    result = compute_reward(make_task(), [], ["100"], {}, RewardConfig())
    assert result.state == 0.0 and result.total == 0.0
    refusal = make_task(kind="refusal", outputs=[], expected_diff={},
                        calls=[ToolCall(name="look", arguments={"id": "a"})])  # fmt: skip
    assert compute_reward(refusal, [], ["No."], {}, RewardConfig()).total == 0.0
    looked = [CallRecord("look", {"id": "a"}, ok=True, format_error=False)]
    assert compute_reward(refusal, looked, ["No."], {}, RewardConfig()).total == 1.0


def test_penalties_for_format_errors_and_extra_calls():
    config = RewardConfig(format_penalty=0.1, extra_call_penalty=0.05, free_extra_calls=1)
    calls = [CallRecord("pay", {"amount": 100}, ok=True, format_error=False)]
    calls += [CallRecord(None, None, ok=False, format_error=True)] * 2
    calls += [CallRecord("look", {}, ok=True, format_error=False)] * 3
    result = compute_reward(make_task(), calls, ["100"], GOOD_DIFF, config)
    assert result.format_errors == 2 and result.extra_calls == 3
    assert result.penalty == pytest.approx(0.2 + 0.1)
    assert result.total == pytest.approx(0.7)


def test_tau_weights_trace_against_outcome_and_schedules():
    config = RewardConfig(tau=0.8, tau_final=0.2, tau_schedule_episodes=10)
    assert [config.tau_at(e) for e in (0, 5, 10, 50)] == pytest.approx([0.8, 0.5, 0.2, 0.2])
    calls = [CallRecord("pay", {"amount": 100}, ok=True, format_error=False)]
    result = compute_reward(make_task(), calls, ["nothing"], {}, config, tau=0.8)
    assert result.total == pytest.approx(0.8)


def test_values_match_is_structural():
    assert values_match({"a": [1, "X "]}, {"a": [1.0, "x"]}, 0.01)
    assert not values_match({"a": [1]}, {"a": [1, 2]}, 0.01)
    assert not values_match(True, 1, 0.01)
    assert not values_match("1", 1, 0.01)


def test_outputs_match_numbers_and_text():
    assert outputs_stated(["1250", "EF101"], "Total: $1,250.00 on ef101", 0.01) == 1.0
    assert outputs_stated(["1250"], "Total: 125", 0.01) == 0.0
    assert outputs_stated(["on time"], "It is On  Time.", 0.01) == 1.0


def test_env_tau_schedule_advances_per_episode(env):
    env.unwrapped.reward_config = RewardConfig(tau=1.0, tau_final=0.0, tau_schedule_episodes=2)
    taus = []
    for _ in range(3):
        env.reset(options={"task_id": "airline-gift_card_balance-00"})
        taus.append(env.step("bye")[4]["reward_breakdown"]["tau"])
    assert taus == [1.0, 0.5, 0.0]


def test_partial_trace_scores_between_zero_and_one(env):
    env.reset(options={"task_id": "airline-add_bags-00"})
    first = env.unwrapped.task.calls[0]
    env.step(format_tool_call(first.name, first.arguments))
    _, reward, _, _, info = env.step("I looked you up.")
    assert 0.0 < reward < 0.5 and info["reward_breakdown"]["trace"] == pytest.approx(1 / 3)


def test_listing_many_candidate_numbers_does_not_count():
    assert outputs_stated(["530"], "Balance: 530", 0.01, max_numbers=12) == 1.0
    spray = " ".join(str(n) for n in range(0, 1000, 10))
    assert outputs_stated(["530"], spray, 0.01, max_numbers=12) == 0.0


def test_reward_config_is_validated():
    import gymnasium as gym
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        gym.make("envfactory/Airline-v0", reward_config={"tua": 0.3})
    with pytest.raises(ValidationError):
        gym.make("envfactory/Airline-v0", reward_config={"tau": 7})
    with pytest.raises(ValidationError):
        RewardConfig(tau_final=0.1)
