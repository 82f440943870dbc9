"""Tasks: what the user wants, what they know, and the ground truth an episode is scored against."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from envfactory_gym.database import comparable_diff

Split = Literal["train", "test"]


class ToolCall(BaseModel):
    """One ground-truth call; arguments named in `masked` may vary and are not compared."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    masked: list[str] = Field(default_factory=list)


class UserReactions(BaseModel):
    """How the simulated user reacts; an empty field takes the default in `envfactory_gym.users`
    (`UserProfile.for_task`)."""

    model_config = ConfigDict(extra="forbid")

    confirm: str = Field("", description="The reply to a proposed action that matches the intent.")
    decline: str = Field("", description="The reply to a proposed action that does not.")
    unknown: str = Field(
        "", description="The reply when asked for something the user does not know."
    )
    guidance: str = Field(
        "", description="Free-text advice for an LLM user on how to behave (tone, what to accept)."
    )


USER_PROFILE_FIELDS = ("persona", "reason_for_contact", "user_unknowns", "user_reactions")
"""The optional fields user simulators read; omitted from a task's JSON while left empty."""


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
    persona: str = Field(
        "", description="Who the user is, one sentence; empty: derived from `user_facts`."
    )
    reason_for_contact: str = Field(
        "", description="Why the user got in touch, one sentence; empty: the instruction."
    )
    user_unknowns: list[str] = Field(
        default_factory=list,
        description="What the user does not know (e.g. 'reservation id'); empty: derived from the "
        "ground truth's id-like arguments that the instruction and `user_facts` do not hold.",
    )
    user_reactions: UserReactions = Field(
        default_factory=UserReactions,
        description="How the user reacts to proposals and to questions they cannot answer.",
    )
    calls: list[ToolCall] = Field(description="Ground-truth calls, in a valid order.")
    outputs: list[str] = Field(
        default_factory=list, description="Facts the agent's answer to the user must state."
    )
    distractors: list[str] = Field(
        default_factory=list,
        description="Wrong answers a guess would list (sibling values in the ground truth's "
        "outputs, other values of the same field): stating one voids the outputs credit.",
    )
    expected_diff: dict[str, Any] = Field(
        default_factory=dict, description="The episode's expected row-level diff of the database."
    )
    allowed_writes: dict[str, list[list[Any]]] = Field(
        default_factory=dict,
        description="Table -> primary keys of the rows the ground truth writes (rows it writes "
        "and restores included). Writing any other row is a violation that voids the reward.",
    )

    @model_serializer(mode="wrap")
    def _omit_empty_user_profile(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leave the user-profile fields out while empty, so tasks written before they existed
        serialize byte for byte as before."""
        data = handler(self)
        for name in USER_PROFILE_FIELDS:
            if getattr(self, name) == type(self).model_fields[name].get_default(
                call_default_factory=True
            ):
                data.pop(name, None)
        return data

    @property
    def writes(self) -> int:
        return sum(
            1 for table in self.expected_diff.values() for rows in table.values() for _ in rows
        )

    @functools.cached_property
    def expected_state(self) -> dict[str, dict[str, tuple[int, Any]]]:
        """`expected_diff` in comparable form, computed once (the reward compares with it)."""
        return comparable_diff(self.expected_diff)

    @functools.cached_property
    def allowed_rows(self) -> frozenset[tuple[str, str]]:
        """`allowed_writes` as (table, key as compact JSON) pairs, the change log's form."""
        return frozenset(
            (table, json.dumps(key, separators=(",", ":"), ensure_ascii=False))
            for table, keys in self.allowed_writes.items()
            for key in keys
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
