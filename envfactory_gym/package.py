"""Env packages: folders with env.toml, schema.sql, seed.py, tools.py, policy.md, tasks.jsonl."""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import pickle
import sqlite3
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envfactory_gym.database import build_template
from envfactory_gym.reward import RewardConfig
from envfactory_gym.tasks import Task, load_tasks
from envfactory_gym.tools import Tool

BUILTIN_ENVS = Path(__file__).resolve().parent.parent / "envs"


class UnknownTaskError(KeyError):
    """A task id that the env package does not have; the message suggests close matches."""

    def __str__(self) -> str:
        return str(self.args[0])


class EnvConfig(BaseModel):
    """The contents of env.toml."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="CamelCase name used in the gym id, e.g. 'Airline'.")
    version: int = 0
    domain: str
    description: str
    max_turns: int = Field(30, gt=0)
    max_user_replies: int = Field(3, ge=0)
    reward: RewardConfig = Field(default_factory=RewardConfig)

    @property
    def gym_id(self) -> str:
        return f"envfactory/{self.id}-v{self.version}"


def builtin_envs_dir() -> Path:
    """Where the shipped env packages live (the `envfactory_gym.envs` package when installed)."""
    spec = importlib.util.find_spec("envfactory_gym.envs")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return BUILTIN_ENVS


def read_config(folder: Path) -> EnvConfig:
    with (folder / "env.toml").open("rb") as handle:
        return EnvConfig.model_validate(tomllib.load(handle))


class EnvPackage:
    """Everything one environment needs, loaded once per process and shared by its instances."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self.config = read_config(folder)
        self.policy = (folder / "policy.md").read_text(encoding="utf-8")
        tools_module = _import(folder, "tools")
        self.tools: dict[str, Tool] = {
            obj.name: obj for obj in vars(tools_module).values() if isinstance(obj, Tool)
        }
        self.tool_schemas: list[dict[str, Any]] = [t.schema for t in self.tools.values()]
        self.tool_schemas_pickle = pickle.dumps(self.tool_schemas, pickle.HIGHEST_PROTOCOL)
        """Unpickling copies the schemas several times faster than a deep copy."""
        self.tasks: list[Task] = load_tasks(folder / "tasks.jsonl")
        self._template: sqlite3.Connection | None = None

    @property
    def template(self) -> sqlite3.Connection:
        """The pristine database, built from schema.sql and seed.py on first use."""
        if self._template is None:
            schema = (self.folder / "schema.sql").read_text(encoding="utf-8")
            self._template = build_template(schema, _import(self.folder, "seed").seed)
        return self._template

    def tasks_for(self, split: str = "all") -> list[Task]:
        if split == "all":
            return list(self.tasks)
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}: expected 'train', 'test' or 'all'")
        return [task for task in self.tasks if task.split == split]

    def task(self, task_id: str) -> Task:
        for task in self.tasks:
            if task.id == task_id:
                return task
        close = difflib.get_close_matches(task_id, [t.id for t in self.tasks], n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownTaskError(
            f"{self.config.gym_id} has no task {task_id!r}{hint} "
            "(`envfactory list` shows the envs; `package.tasks` holds the ids)"
        )

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        """Pickle by reference: the receiving process loads (or reuses) the same package."""
        builtin = self.folder.parent == builtin_envs_dir().resolve()
        return load_package, (self.name if builtin else str(self.folder),)


@functools.cache
def load_package(name_or_path: str) -> EnvPackage:
    """Load an env package by builtin name ('airline') or by folder path; cached per process."""
    folder = Path(name_or_path)
    if not (folder / "env.toml").is_file():
        folder = builtin_envs_dir() / name_or_path
    if not (folder / "env.toml").is_file():
        raise FileNotFoundError(f"no env package {name_or_path!r} (looked for {folder}/env.toml)")
    return EnvPackage(folder.resolve())


def _import(folder: Path, module: str) -> ModuleType:
    installed = importlib.util.find_spec("envfactory_gym.envs") is not None
    if installed and folder.resolve().parent == builtin_envs_dir().resolve():
        return importlib.import_module(f"envfactory_gym.envs.{folder.name}.{module}")
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    name = f"envfactory_gym_external.{folder.name}_{tag}.{module}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, folder / f"{module}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {folder / module}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded
