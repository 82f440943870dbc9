"""`envfactory export`: tasks as a dataset for other trainers, and the reward they call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from envfactory_gym.actions import format_tool_call
from envfactory_gym.checker import oracle_answer
from envfactory_gym.export import (
    export_tasks,
    score_completion,
    task_rows,
    trl_reward,
    verl_compute_score,
)
from envfactory_gym.package import load_package

ENV = "envfactory/Airline-v0"


def oracle_completion(task) -> str:
    calls = "\n".join(format_tool_call(c.name, c.arguments) for c in task.calls)
    return f"{calls}\n{oracle_answer(task.outputs)}"


def test_export_writes_one_row_per_task_in_the_shape_trainers_read(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    count = export_tasks([ENV, "envfactory/Retail-v0"], out, "jsonl", split="train")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    train = [t for p in ("airline", "retail") for t in load_package(p).tasks_for("train")]
    assert count == len(rows) == len(train)
    row = rows[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user"]
    assert row["prompt"][1]["content"] == train[0].instruction
    assert json.loads(row["tools"])[0]["type"] == "function"
    truth = json.loads(row["reward_model"]["ground_truth"])
    assert truth["calls"][0]["name"] == train[0].calls[0].name
    assert row["extra_info"]["task_id"] == train[0].id and row["data_source"] == ENV


def test_parquet_export_reads_back_as_the_same_rows(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "test.parquet"
    export_tasks([ENV], out, "parquet", split="test")
    table = pq.read_table(out).to_pylist()
    assert [r["extra_info"]["task_id"] for r in table] == [
        r["extra_info"]["task_id"] for r in task_rows([ENV], "test")
    ]


def test_the_reward_replays_a_completion_on_the_env() -> None:
    task = load_package("airline").task("airline-cancel-00")
    assert score_completion(ENV, task.id, oracle_completion(task))["total"] == 1.0
    half = format_tool_call(task.calls[0].name, task.calls[0].arguments) + "\nDone."
    assert 0.0 < score_completion(ENV, task.id, half)["total"] < 1.0
    assert score_completion(ENV, task.id, "I cancelled it.")["total"] == 0.0
    messages = [{"role": "assistant", "content": oracle_completion(task)}]
    assert score_completion(ENV, task.id, messages)["total"] == 1.0


def test_verl_and_trl_signatures_give_the_env_reward() -> None:
    tasks = load_package("airline").tasks_for("test")[:3]
    infos = [{"env_id": ENV, "task_id": t.id} for t in tasks]
    completions = [oracle_completion(t) for t in tasks]
    assert trl_reward(prompts=[None] * 3, completions=completions, extra_info=infos) == [1.0] * 3
    assert verl_compute_score(ENV, "Nothing to do.", "{}", infos[0]) == 0.0
    with pytest.raises(ValueError, match="task_id"):
        verl_compute_score(ENV, "x", "{}", {})
