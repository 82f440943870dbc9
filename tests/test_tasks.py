"""Airline-v0 tasks: verified by replay, solvable by the oracle, calibrated, reproducible."""

import json
import re
from pathlib import Path

import pytest

import envfactory_gym
from envfactory_gym.agents import OracleAgent, RandomAgent
from envfactory_gym.evaluation import evaluate, run_episode
from envfactory_gym.replay import replay

PACKAGE = envfactory_gym.load_package("airline")
TASK_IDS = [task.id for task in PACKAGE.tasks]


def test_task_set_covers_the_required_mix():
    kinds = {task.kind for task in PACKAGE.tasks}
    assert len(PACKAGE.tasks) >= 60
    assert kinds == {"read", "write", "multi_write", "refusal", "handoff"}
    assert any(call.masked for task in PACKAGE.tasks for call in task.calls)
    assert {task.split for task in PACKAGE.tasks} == {"train", "test"}


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_every_task_replays_to_its_expected_state(task_id):
    task = PACKAGE.task(task_id)
    assert replay(PACKAGE, task.calls).diff == task.expected_diff


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_oracle_scores_one(env, task_id):
    result = run_episode(env, OracleAgent(), task_id)
    assert result["reward"] == 1.0 and result["success"], result["breakdown"]


def test_random_agent_scores_near_zero():
    report = evaluate("envfactory/Airline-v0", RandomAgent(seed=1), "random", progress=False)
    assert report["success_rate"] < 0.05 and report["mean_reward"] < 0.05


def _spoken(value: str) -> set[str]:
    forms = {
        value.casefold(),
        value.replace("_", " ").casefold(),
        value.replace("_", "-").casefold(),
    }
    if re.fullmatch(r"2024-05-\d\d", value):
        forms.add(f"may {int(value[8:])}")
    return forms


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_instructions_are_calibrated(task_id):
    """No tool names, no ids the agent can look up, every string argument grounded."""
    task = PACKAGE.task(task_id)
    text = task.instruction.casefold()
    assert not any(name in text for name in PACKAGE.tools)
    assert not re.search(r"\b[A-Z0-9]{6}\b", task.instruction), "reservation id in instruction"
    assert "credit_card_" not in text and "gift_card_" not in text
    known = text + " " + json.dumps(task.user_facts).casefold()
    outputs = replay(PACKAGE, task.calls).results
    for index, call in enumerate(task.calls):
        seen = known + " " + json.dumps(outputs[:index], default=str).casefold()
        for key, value in call.arguments.items():
            if key in call.masked:
                continue
            for text_value in _strings(value):
                assert any(form in seen for form in _spoken(text_value)), (
                    call.name,
                    key,
                    text_value,
                )


def test_tasks_file_is_reproducible_from_the_seed():
    from envfactory_gym.envs.airline.build_tasks import build

    path = Path(PACKAGE.folder, "tasks.jsonl")
    assert [t.model_dump() for t in build()] == [json.loads(line) for line in path.open()]
