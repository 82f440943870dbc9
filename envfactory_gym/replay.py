"""Replay ground-truth calls on a fresh copy of an env package's database."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from envfactory_gym.database import Database, Diff
from envfactory_gym.distractors import find_distractors, sorted_distractors
from envfactory_gym.package import EnvPackage
from envfactory_gym.tasks import Task, ToolCall


@dataclass
class Replay:
    results: list[Any]
    diff: Diff
    written: dict[str, list[list[Any]]]
    """Table -> keys of every row the calls changed (restored ones included), sorted."""


def replay(package: EnvPackage, calls: list[ToolCall], db: Database | None = None) -> Replay:
    """Run the calls in order on a pristine database; any failing call raises."""
    db = db or package.new_database()
    db.reset()
    results = []
    for index, call in enumerate(calls):
        tool = package.tools.get(call.name)
        if tool is None:
            raise ValueError(f"call {index}: unknown tool {call.name!r}")
        arguments = tool.validate(call.arguments)
        changes = db.total_changes
        with db.call():
            results.append(tool(db, **arguments))
        if tool.kind != "write" and db.total_changes != changes:
            raise ValueError(f"call {index}: {call.name} is not a write tool but wrote")
    written: dict[str, list[list[Any]]] = {}
    for table, key in sorted(db.written_rows()):
        written.setdefault(table, []).append(json.loads(key))
    return Replay(results=results, diff=db.diff(), written=written)


def task_from_calls(
    package: EnvPackage,
    calls: list[ToolCall],
    outputs: Callable[[list[Any]], list[str]],
    **fields: Any,
) -> Task:
    """A hand-built task with its ground truth filled in by replaying `calls`: the expected diff,
    the allowed writes, the required outputs (`outputs` of the calls' results) and their
    distractors (over every database of the package). `fields` are the rest of the task (id,
    split, kind, instruction, user_facts). A call that fails raises, as in `replay`."""
    result = replay(package, calls)
    required = outputs(result.results)
    said = " ".join([fields.get("instruction", ""), *fields.get("user_facts", {}).values()])
    found: set[str] = set()
    for conn in package.member_templates().values():
        found.update(find_distractors(required, result.results, conn, said))
    return Task(
        calls=calls,
        outputs=required,
        distractors=sorted_distractors(found),
        expected_diff=result.diff,
        allowed_writes=result.written,
        **fields,
    )
