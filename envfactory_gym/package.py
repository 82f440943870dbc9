"""Env packages: folders with env.toml, schema.sql, seed.py, tools.py, policy.md, tasks.jsonl."""

from __future__ import annotations

import contextlib
import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import pickle
import sqlite3
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from envfactory_gym import database
from envfactory_gym.database import Database, build_template, connect_memory
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
    members: list[str] = Field(
        default_factory=list,
        description="A composite env's member packages (builtin names or folders relative to "
        "this one): their tools over their own databases, at once. Empty for a plain package.",
    )

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
        self.tasks: list[Task] = load_tasks(folder / "tasks.jsonl")
        self._template: sqlite3.Connection | None = None

    @property
    def template(self) -> sqlite3.Connection:
        """The pristine database: built from schema.sql and seed.py on first use, then cached
        on disk (see `template_cache`), so later processes load it instead of seeding again."""
        if self._template is None:
            self._template = load_or_build_template(self)
        return self._template

    def new_database(self) -> Database:
        """A fresh handle on a private copy of the template: what each env instance holds."""
        return Database(self.template)

    def member_templates(self) -> dict[str, sqlite3.Connection]:
        """The pristine databases by name: this package's one (a composite has one per member)."""
        return {self.name: self.template}

    def build_templates(self) -> dict[str, sqlite3.Connection]:
        """`member_templates()` built afresh from schema and seed (no cache)."""
        return {self.name: self.build_database()}

    def content_hash(self) -> str:
        """A hash of everything the template is built from: schema, seed code, data files, and
        the runtime code that builds it (database.py, which installs the change log)."""
        digest = hashlib.sha256(TEMPLATE_FORMAT.encode())
        digest.update(Path(database.__file__).read_bytes())
        inputs = (
            p for p in self.folder.iterdir()
            if p.name in ("schema.sql", "seed.py") or p.suffix in DATA_SUFFIXES
        )  # fmt: skip
        return hash_files(inputs, digest).hexdigest()[:16]

    @functools.cached_property
    def tool_schemas_pickle(self) -> bytes:
        """The tool schemas pickled once: unpickling copies them several times faster than a
        deep copy."""
        return pickle.dumps(self.tool_schemas, pickle.HIGHEST_PROTOCOL)

    def copy_tool_schemas(self) -> list[dict[str, Any]]:
        """A fresh copy of the tool schemas, one the caller may change (what reset infos give)."""
        return pickle.loads(self.tool_schemas_pickle)

    @functools.cached_property
    def system_prompt(self) -> str:
        """The agent's system prompt: who it serves and the policy. One string shared by every
        env of the package, so pickling many envs' resets in one message writes it once."""
        return (
            f"You are a customer service agent for {self.config.description}\n"
            "Use the tools to look things up and make changes; follow the policy below exactly. "
            "Reply to the user in plain text when you need information from them or when you "
            "are done.\n\n"
            f"# Policy\n\n{self.policy.strip()}\n"
        )

    def at_scale(self, scale: int) -> EnvPackage:
        """This package over a database `scale` times larger, for benchmarks: its seed must take
        `scale` (the 1x rows unchanged, so the tasks still replay). Not registered, and it
        pickles back to the 1x package."""
        seed = _import(self.folder, "seed").seed
        if "scale" not in inspect.signature(seed).parameters:
            raise ValueError(f"{self.folder / 'seed.py'}: seed() takes no `scale` argument")
        scaled = object.__new__(EnvPackage)  # not copy.copy: __reduce__ returns the cached one
        scaled.__dict__.update(self.__dict__)
        scaled._template = self.build_database(scale=scale)
        return scaled

    def build_database(self, **seed_arguments: Any) -> sqlite3.Connection:
        """A fresh template from schema.sql and seed.py (no cache), the seed called with
        `seed_arguments`."""
        schema = (self.folder / "schema.sql").read_text(encoding="utf-8")
        seed = _import(self.folder, "seed").seed
        return build_template(schema, functools.partial(seed, **seed_arguments))

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
        builtin = self.folder.parent == builtin_envs_dir().resolve() and self.name.isidentifier()
        return load_package, (self.name if builtin else str(self.folder),)


TEMPLATE_FORMAT = "envfactory-template-1"
"""Part of every cached template's key: bump it to drop every cached template at once."""
DATA_SUFFIXES = (".csv", ".json", ".txt", ".yaml")


def hash_files(paths: Iterable[Path], digest: Any = None) -> Any:
    """`digest` (a new sha256 if None) updated with each file's name and bytes, in name order."""
    digest = digest if digest is not None else hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest


def template_cache() -> Path | None:
    """Where built templates are cached: $ENVFACTORY_CACHE, else ~/.cache/envfactory_gym
    (XDG_CACHE_HOME respected); ENVFACTORY_CACHE=off turns the cache off."""
    configured = os.environ.get("ENVFACTORY_CACHE")
    if configured is not None:
        return None if configured.lower() in ("", "0", "off", "false") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "envfactory_gym" / "templates"


def load_or_build_template(package: EnvPackage) -> sqlite3.Connection:
    """The package's template from the disk cache if its content hash matches, else built from
    schema and seed (and written to the cache atomically; an unwritable cache is skipped)."""
    folder = template_cache()
    path = None if folder is None else folder / f"{package.name}-{package.content_hash()}.db"
    if path is not None and path.is_file():
        conn = connect_memory()
        conn.deserialize(path.read_bytes())
        return conn
    conn = package.build_database()
    if path is not None:
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(conn.serialize())
            os.replace(partial, path)
    return conn


@functools.cache
def load_package(name_or_path: str) -> EnvPackage:
    """Load an env package by builtin name ('airline') or by folder path; cached per process."""
    folder = Path(name_or_path)
    if not (folder / "env.toml").is_file():
        folder = builtin_envs_dir() / name_or_path
    if not (folder / "env.toml").is_file():
        raise FileNotFoundError(f"no env package {name_or_path!r} (looked for {folder}/env.toml)")
    return open_package(folder.resolve())


def open_package(folder: Path) -> EnvPackage:
    """The package in `folder` (not cached): a composite when its env.toml names members."""
    if read_config(folder).members:
        from envfactory_gym.composite import CompositePackage

        return CompositePackage(folder)
    return EnvPackage(folder)


def _import(folder: Path, module: str) -> ModuleType:
    installed = importlib.util.find_spec("envfactory_gym.envs") is not None
    builtin = folder.resolve().parent == builtin_envs_dir().resolve()
    if installed and builtin and folder.name.isidentifier():  # not a generator's staging folder
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
