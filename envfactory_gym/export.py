"""Tasks as a dataset other trainers read, and a reward function they can call.

`export_tasks` writes one row per task in the shape verl's RL dataset, TRL's conversational
prompts and OpenRLHF (with `--input_key prompt`) read: `prompt` (the system prompt with the policy,
then the user's opening message), `tools` (the JSON schemas, as text), `data_source` (the gym id),
`ability`, `reward_model` ({"style": "rule", "ground_truth": the task's ground truth as JSON}) and
`extra_info` (env, task, split, kind). `envfactory export` is the command.

`score_completion` replays a completion on the env: every `<tool_call>` in it, in order, then
the text around them as the answer to the user, and returns the env's own reward. Two adapters
call it with each trainer's signature: `verl_compute_score` (verl's `custom_reward_function`) and
`trl_reward` (a TRL reward function; the dataset's `data_source` and `extra_info` columns reach it
as keyword arguments).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym

from envfactory_gym.actions import format_tool_call, parse_action
from envfactory_gym.package import load_package
from envfactory_gym.registry import package_name

ABILITY = "tool-use"


def task_rows(env_ids: Iterable[str], split: str = "train") -> Iterator[dict[str, Any]]:
    """One dataset row per task of the split, for every env id."""
    for env_id in env_ids:
        env = _env(env_id)
        for task in load_package(package_name(env_id)).tasks_for(split):
            _, info = env.reset(options={"task_id": task.id})
            truth = {
                "calls": [c.model_dump() for c in task.calls],
                "outputs": task.outputs,
                "expected_diff": task.expected_diff,
            }
            yield {
                "data_source": env_id,
                "prompt": info["messages"],
                "tools": json.dumps(info["tools"], ensure_ascii=False),
                "ability": ABILITY,
                "reward_model": {"style": "rule", "ground_truth": json.dumps(truth)},
                "extra_info": {
                    "env_id": env_id, "task_id": task.id, "split": task.split, "kind": task.kind,
                },
            }  # fmt: skip


def export_tasks(
    env_ids: Iterable[str],
    out: str | Path,
    fmt: Literal["jsonl", "parquet"] = "jsonl",
    split: str = "train",
) -> int:
    """Write the split's tasks of every env to `out` (JSON lines, or Parquet with pyarrow);
    returns the number of rows."""
    rows = list(task_rows(env_ids, split))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with out.open("w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "parquet":
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(
                "Parquet needs pyarrow (in the `train` extra): pip install pyarrow"
            ) from None
        pq.write_table(pa.Table.from_pylist(rows), out)
    else:
        raise ValueError(f"unknown format {fmt!r}: jsonl or parquet")
    return len(rows)


@functools.cache
def _env(env_id: str) -> gym.Env:
    """One env per id per process, reused for every score (reset is a rollback)."""
    return gym.make(env_id, disable_env_checker=True)


def score_completion(
    env_id: str, task_id: str, completion: str | list[dict[str, Any]]
) -> dict[str, Any]:
    """The env's reward for a completion: its tool calls replayed in order, then its text as the
    answer. A completion is the model's text, or its assistant messages (their contents are
    joined). Returns the reward breakdown (`total` is the reward)."""
    text = _completion_text(completion)
    env = _env(env_id)
    env.reset(options={"task_id": task_id})
    parsed = parse_action(text)
    info: dict[str, Any] = {}
    terminated = truncated = False
    for call in parsed.calls:
        if call.name is not None and call.error is None:
            action = format_tool_call(call.name, call.arguments)
        else:  # malformed: the env sees it as it was, and charges the format penalty
            action = f"<tool_call>{call.raw}</tool_call>"
        *_, terminated, truncated, info = env.step(action)
        if terminated or truncated:
            break
    if not (terminated or truncated):
        *_, terminated, truncated, info = env.step(parsed.message or "Done.")
    if not (terminated or truncated):  # the user asked something back: the episode ends here
        env.unwrapped.done = True
        env.unwrapped.last_reward = env.unwrapped.score()
        return env.unwrapped.last_reward.model_dump()
    return info["reward_breakdown"]


def _completion_text(completion: str | list[dict[str, Any]]) -> str:
    if isinstance(completion, str):
        return completion
    return "\n".join(str(m.get("content") or "") for m in completion if m.get("role") != "user")


def verl_compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: dict | None = None
) -> float:
    """verl's `custom_reward_function` signature (`custom_reward_function.path` = this module,
    `name` = `verl_compute_score`): the env's reward for `solution_str`."""
    task_id = (extra_info or {}).get("task_id")
    if not task_id:
        raise ValueError("extra_info must carry the task_id (export the dataset with envfactory)")
    return float(score_completion(data_source, task_id, solution_str)["total"])


def trl_reward(
    prompts: list[Any], completions: list[Any], extra_info: list[dict], **kwargs: Any
) -> list[float]:
    """A TRL reward function (`reward_funcs=[trl_reward]`): the env's reward for each completion,
    its env and task read from the dataset's `extra_info` column."""
    return [
        float(score_completion(info["env_id"], info["task_id"], completion)["total"])
        for completion, info in zip(completions, extra_info, strict=True)
    ]
