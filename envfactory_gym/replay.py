"""Replay ground-truth calls on a fresh copy of an env package's database."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from envfactory_gym.database import Database, Diff
from envfactory_gym.package import EnvPackage
from envfactory_gym.tasks import ToolCall


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
