"""Tasks: what the user wants, what they know, and the ground truth an episode is scored against."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Split = Literal["train", "test"]


class ToolCall(BaseModel):
    """One ground-truth call; arguments named in `masked` may vary and are not compared."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    masked: list[str] = Field(default_factory=list)


class Task(BaseModel):
    """A user goal in one environment, with everything needed to replay and score it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    split: Split
    kind: Literal["read", "write", "multi_write", "refusal", "handoff"]
    instruction: str = Field(description="The user's opening message: intent, not steps.")
    user_facts: dict[str, str] = Field(
        default_factory=dict, description="What the user knows and will tell the agent if asked."
    )
    calls: list[ToolCall] = Field(description="Ground-truth calls, in a valid order.")
    outputs: list[str] = Field(
        default_factory=list, description="Facts the agent's answer to the user must state."
    )
    expected_diff: dict[str, Any] = Field(
        default_factory=dict, description="The episode's expected row-level diff of the database."
    )

    @property
    def writes(self) -> int:
        return sum(
            1 for table in self.expected_diff.values() for rows in table.values() for _ in rows
        )


def load_tasks(path: Path) -> list[Task]:
    """Read a tasks.jsonl file; a bad line raises with its line number."""
    tasks = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                tasks.append(Task.model_validate(json.loads(line)))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: invalid task: {exc}") from exc
    ids = [task.id for task in tasks]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: duplicate task ids")
    return tasks


def write_tasks(path: Path, tasks: list[Task]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for task in tasks:
            handle.write(task.model_dump_json(exclude_defaults=False) + "\n")
