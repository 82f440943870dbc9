"""Composite env packages: the tools of two or three packages at once, each over its own database.

A composite is a folder with `env.toml` (whose `members` names the packages), `policy.md` (what
spans the services), `tasks.jsonl`, and optionally `link.py`. Each member keeps its tables and its
tools; a tool whose name two members share is exposed as `<member>_<name>`. An episode's diff
names tables `<member>.<table>`, so the reward, the per-task checker and verification work across
the members' databases unchanged.

`link.py` makes the members' data describe one world (the same person in the calendar and in the
mail service). Its contract: `link(databases: dict[str, sqlite3.Connection]) -> None` receives a
private copy of each member's pristine database by member name, inside no transaction, and
updates rows in place, deterministically. What it writes becomes the composite's start state.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from envfactory_gym.database import CHANGE_LOG, Database, Diff, connect_memory, diff_from_changes
from envfactory_gym.package import (
    EnvPackage,
    _import,
    builtin_envs_dir,
    load_package,
    read_config,
)
from envfactory_gym.tasks import load_tasks
from envfactory_gym.tools import Tool

Change = tuple[str, str, str | None, str | None]


class CompositeDatabase:
    """One `Database` per member, handled as one: a call, a reset and a diff span them all."""

    def __init__(self, templates: dict[str, sqlite3.Connection]) -> None:
        self.members = {name: Database(template) for name, template in templates.items()}

    def reset(self) -> None:
        for db in self.members.values():
            db.reset()

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One tool call, atomic across every member: an exception rolls all of them back."""
        with contextlib.ExitStack() as stack:
            for db in self.members.values():
                stack.enter_context(db.call())
            yield

    def close(self) -> None:
        for db in self.members.values():
            db.close()

    @property
    def total_changes(self) -> int:
        return sum(db.total_changes for db in self.members.values())

    @property
    def connections(self) -> dict[str, sqlite3.Connection]:
        return {name: db.conn for name, db in self.members.items()}

    def foreign_key_violations(self) -> list[tuple[Any, ...]]:
        return [(name, *row) for name, db in self.members.items()
                for row in db.foreign_key_violations()]  # fmt: skip

    def changes(self) -> list[Change]:
        """Net row changes of every member, tables named `<member>.<table>`."""
        return sorted(
            (f"{name}.{table}", key, before, after)
            for name, db in self.members.items()
            for table, key, before, after in db.changes()
        )

    def written_rows(self) -> set[tuple[str, str]]:
        return {(f"{name}.{table}", key) for name, db in self.members.items()
                for table, key in db.written_rows()}  # fmt: skip

    def diff_and_written(self) -> tuple[Diff, set[tuple[str, str]]]:
        return self.diff(), self.written_rows()

    def diff(self) -> Diff:
        return diff_from_changes(self.changes())

    def state_digest(self) -> dict[str, str]:
        return {
            f"{name}.{table}": digest
            for name, db in self.members.items()
            for table, digest in db.state_digest().items()
        }


class MemberTool(Tool):
    """A member's tool as the composite exposes it: maybe renamed, called on its member's
    database, its description saying which service it belongs to."""

    def __init__(self, inner: Tool, member: str, service: str, name: str, owner: Path) -> None:
        self.inner, self.member, self.owner = inner, member, owner
        self.fn = inner.fn
        self.name = name
        self.kind = inner.kind
        self.description = f"{service}: {inner.description}"
        self.arguments_model = inner.arguments_model
        self._validator, self._nested = inner._validator, inner._nested
        self.parameters = inner.parameters

    def __call__(self, db: Any, **arguments: Any) -> Any:
        return self.inner(db.members[self.member], **arguments)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        """Pickle by reference to the composite package, like every tool."""
        builtin = self.owner.parent == builtin_envs_dir().resolve()
        return _load_member_tool, (self.owner.name if builtin else str(self.owner), self.name)


def _load_member_tool(folder: str, name: str) -> Tool:
    return load_package(folder).tools[name]


class CompositePackage(EnvPackage):
    """A composite env package (see the module docstring); loaded by `load_package` when the
    folder's env.toml names `members`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self.config = read_config(folder)
        if len(self.config.members) < 2:
            raise ValueError(f"{folder / 'env.toml'}: a composite needs at least two members")
        self.members = {
            _member_name(folder, ref): load_package(_member_ref(folder, ref))
            for ref in self.config.members
        }
        self.tools = _expose_tools(self.members, folder)
        self.tool_schemas = [t.schema for t in self.tools.values()]
        own = (folder / "policy.md").read_text(encoding="utf-8").strip()
        self.policy = "\n\n".join(
            [own]
            + [
                f"## {member.config.id}\n\n{_demote_headings(member.policy.strip())}"
                for member in self.members.values()
            ]
        )
        self.tasks = load_tasks(folder / "tasks.jsonl")
        self._template = None
        self._templates: dict[str, sqlite3.Connection] | None = None

    @property
    def template(self) -> sqlite3.Connection:
        raise TypeError(
            f"{self.config.gym_id} is a composite with one database per member: use "
            "new_database() or member_templates()"
        )

    def member_templates(self) -> dict[str, sqlite3.Connection]:
        """Each member's pristine database after `link.py` ran: the composite's start state."""
        if self._templates is None:
            self._templates = self.build_templates(fresh=False)
        return self._templates

    def build_templates(self, *, fresh: bool = True) -> dict[str, sqlite3.Connection]:
        """The members' databases (rebuilt from schema and seed if `fresh`), then linked."""
        databases = {}
        for name, member in self.members.items():
            source = member.build_database() if fresh else member.template
            databases[name] = connect_memory()
            source.backup(databases[name])
            if fresh:
                source.close()
        if (self.folder / "link.py").is_file():
            _import(self.folder, "link").link(databases)
        for conn in databases.values():
            conn.execute(f"DELETE FROM {CHANGE_LOG}")  # linking is the start, not a change
        return databases

    def new_database(self) -> CompositeDatabase:  # type: ignore[override]
        return CompositeDatabase(self.member_templates())

    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for name, member in self.members.items():
            digest.update(f"{name}={member.content_hash()};".encode())
        link = self.folder / "link.py"
        if link.is_file():
            digest.update(link.read_bytes())
        return digest.hexdigest()[:16]

    def build_database(self, **seed_arguments: Any) -> sqlite3.Connection:
        raise TypeError(f"{self.config.gym_id} is a composite: use build_templates()")

    def at_scale(self, scale: int) -> EnvPackage:
        raise ValueError(f"{self.config.gym_id} is a composite: scale its members instead")


def _member_ref(folder: Path, ref: str) -> str:
    """A member reference as `load_package` takes it: a folder next to the composite's (for a
    relative path), else the builtin name or the path as given."""
    relative = (folder / ref).resolve()
    if "/" in ref and (relative / "env.toml").is_file():
        return str(relative)
    return ref


def _member_name(folder: Path, ref: str) -> str:
    return Path(_member_ref(folder, ref)).name


def _expose_tools(members: dict[str, EnvPackage], owner: Path) -> dict[str, Tool]:
    """Every member's tools; a name two members share becomes `<member>_<name>` for both."""
    counts: dict[str, int] = {}
    for member in members.values():
        for name in member.tools:
            counts[name] = counts.get(name, 0) + 1
    tools: dict[str, Tool] = {}
    for member_name, member in members.items():
        for name, inner in member.tools.items():
            exposed = f"{member_name}_{name}" if counts[name] > 1 else name
            if exposed in tools:
                raise ValueError(f"{owner}: two member tools would both be called {exposed!r}")
            service = member.config.id
            tools[exposed] = MemberTool(inner, member_name, service, exposed, owner)
    return tools


def _demote_headings(markdown: str) -> str:
    """A member's policy under the composite's heading: each Markdown heading one level down."""
    return "\n".join("#" + line if line.startswith("#") else line for line in markdown.splitlines())
