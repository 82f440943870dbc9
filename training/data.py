"""Which envs and tasks a run trains on: env resolution, mixture weights, curriculum, prompts."""

from __future__ import annotations

import fnmatch
import random
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TaskRef:
    """One task of one env, with what the curriculum orders it by."""

    env_id: str
    task_id: str
    split: str
    kind: str
    n_calls: int
    n_writes: int

    @property
    def difficulty(self) -> tuple[int, int]:
        """Chain length (ground-truth calls), then number of database writes."""
        return (self.n_calls, self.n_writes)


def registered_envs() -> dict[str, str]:
    """Registered envfactory gym ids -> their package names."""
    import gymnasium as gym

    import envfactory_gym  # noqa: F401  (registers the envs)

    return {
        env_id: spec.kwargs.get("package", "")
        for env_id, spec in gym.registry.items()
        if env_id.startswith("envfactory/")
    }


def resolve_envs(patterns: Sequence[str]) -> list[str]:
    """Env ids for ids, short names (`airline`) or globs (`envfactory/*`), in pattern order."""
    known = registered_envs()
    resolved: list[str] = []
    for pattern in patterns:
        matches = [
            env_id
            for env_id, package in sorted(known.items())
            if fnmatch.fnmatchcase(env_id, pattern)
            or fnmatch.fnmatchcase(env_id.split("/", 1)[1], pattern)
            or fnmatch.fnmatchcase(package, pattern.lower())
        ]
        if not matches:
            raise ValueError(f"no env matches {pattern!r}; registered: {', '.join(sorted(known))}")
        resolved += [m for m in matches if m not in resolved]
    return resolved


def mixture_weights(env_ids: Sequence[str], weights: Sequence[float] | None) -> dict[str, float]:
    """Normalized sampling weight per env (uniform by default)."""
    if weights is None:
        weights = [1.0] * len(env_ids)
    if len(weights) != len(env_ids):
        raise ValueError(f"{len(weights)} env_weights for {len(env_ids)} envs: {list(env_ids)}")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("env_weights must be non-negative and not all zero")
    total = float(sum(weights))
    return {env_id: w / total for env_id, w in zip(env_ids, weights, strict=True)}


def list_tasks(
    env_ids: Sequence[str], split: str, patterns: Sequence[str] | None = None
) -> list[TaskRef]:
    """The tasks of `split` ("train", "test" or "all") in each env, optionally filtered by id."""
    import gymnasium as gym

    refs = []
    for env_id in env_ids:
        env = gym.make(env_id, disable_env_checker=True)
        for task in env.unwrapped.package.tasks:
            if split != "all" and task.split != split:
                continue
            if patterns and not any(fnmatch.fnmatchcase(task.id, p) for p in patterns):
                continue
            refs.append(
                TaskRef(env_id, task.id, task.split, task.kind, len(task.calls), task.writes)
            )
        env.close()
    if not refs:
        raise ValueError(f"no {split!r} tasks in {list(env_ids)} matching {patterns}")
    return refs


def prompt_key(messages: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """A prompt's identity: its system prompt (which names the env) and the user's request."""
    return tuple(str(m.get("content", "")) for m in messages[:2])


class PromptIndex:
    """Maps a prompt back to its (env_id, task_id): TRL hands `rollout_func` only the prompts."""

    def __init__(self) -> None:
        self._index: dict[tuple[str, ...], tuple[str, str]] = {}

    def add(self, messages: Sequence[dict[str, Any]], env_id: str, task_id: str) -> None:
        """Register a task's opening messages; two tasks with one prompt are an error."""
        key = prompt_key(messages)
        if self._index.setdefault(key, (env_id, task_id)) != (env_id, task_id):
            other = self._index[key]
            raise ValueError(f"tasks {other} and {(env_id, task_id)} have identical prompts")

    def lookup(self, messages: Sequence[dict[str, Any]]) -> tuple[str, str]:
        """(env_id, task_id) of a registered prompt."""
        try:
            return self._index[prompt_key(messages)]
        except KeyError:
            raise KeyError("prompt does not belong to any known task") from None


def prompt_rows(tasks: Sequence[TaskRef], index: PromptIndex | None = None) -> list[dict[str, Any]]:
    """One dataset row per task: the opening messages as `prompt`, plus the task's identity."""
    import gymnasium as gym

    envs: dict[str, Any] = {}
    rows = []
    for ref in tasks:
        if ref.env_id not in envs:
            envs[ref.env_id] = gym.make(ref.env_id, disable_env_checker=True)
        _, info = envs[ref.env_id].reset(options={"task_id": ref.task_id})
        messages = [{"role": m["role"], "content": m["content"]} for m in info["messages"]]
        if index is not None:
            index.add(messages, ref.env_id, ref.task_id)
        rows.append(
            {
                "prompt": messages,
                "env_id": ref.env_id,
                "task_id": ref.task_id,
                "difficulty": list(ref.difficulty),
            }
        )
    for env in envs.values():
        env.close()
    return rows


class Curriculum:
    """Difficulty levels unlocked in order once the success rate at the top level is high enough.

    Call `update` with the same (gathered) results on every process so all samplers agree.
    """

    def __init__(self, tasks: Sequence[TaskRef], threshold: float = 0.6, window: int = 32) -> None:
        self.levels = sorted({t.difficulty for t in tasks})
        self.threshold = threshold
        self.level = 0
        self.recent: deque[bool] = deque(maxlen=window)

    @property
    def max_difficulty(self) -> tuple[int, int]:
        """The hardest difficulty unlocked so far."""
        return self.levels[self.level]

    def allows(self, task: TaskRef) -> bool:
        """Whether `task` is unlocked."""
        return task.difficulty <= self.max_difficulty

    def update(self, results: Sequence[tuple[Sequence[int], bool]]) -> bool:
        """Feed (difficulty, success) of finished episodes; True if a new level was unlocked."""
        for difficulty, success in results:
            if tuple(difficulty) == self.max_difficulty:
                self.recent.append(bool(success))
        full = len(self.recent) == self.recent.maxlen
        if (
            full
            and self.level + 1 < len(self.levels)
            and sum(self.recent) / len(self.recent) >= self.threshold
        ):
            self.level += 1
            self.recent.clear()
            return True
        return False


class TaskSampler:
    """Dataset indices for GRPO-style training: env by mixture weight, then a task (curriculum-
    allowed), each repeated `mini_repeat_count` times (one group), chunks of `batch_size` tasks
    repeated `repeat_count` times; the same sequence on every process (shared seed), like TRL's
    RepeatSampler. Drawn lazily, so curriculum changes apply from the next chunk."""

    def __init__(
        self,
        tasks: Sequence[TaskRef],
        weights: dict[str, float],
        *,
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        seed: int = 0,
        curriculum: Curriculum | None = None,
    ) -> None:
        self.tasks = list(tasks)
        self.weights = weights
        self.mini_repeat_count = mini_repeat_count
        self.batch_size = batch_size
        self.repeat_count = repeat_count
        self.curriculum = curriculum
        self.rng = random.Random(seed)
        self.num_batches = max(1, len(self.tasks) // batch_size)

    def draw(self) -> int:
        """One task index: an env by weight (among envs with allowed tasks), then uniformly."""
        allowed = [
            i
            for i, t in enumerate(self.tasks)
            if self.curriculum is None or self.curriculum.allows(t)
        ]
        envs = sorted(
            {self.tasks[i].env_id for i in allowed if self.weights.get(self.tasks[i].env_id)}
        )
        if not envs:
            raise ValueError("no task left to sample: check env_weights and the task filter")
        env_id = self.rng.choices(envs, weights=[self.weights[e] for e in envs])[0]
        return self.rng.choice([i for i in allowed if self.tasks[i].env_id == env_id])

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_batches):
            chunk = [self.draw() for _ in range(self.batch_size)]
            for _ in range(self.repeat_count):
                for index in chunk:
                    yield from [index] * self.mini_repeat_count

    def __len__(self) -> int:
        return self.num_batches * self.batch_size * self.repeat_count * self.mini_repeat_count
