"""TRL `GRPOTrainer(environment_factory=...)` over any envfactory env.

One line of glue::

    from trl import GRPOConfig, GRPOTrainer
    from envfactory_gym.integrations import trl as ef_trl

    config = GRPOConfig(output_dir="out", num_generations=8, max_tool_calling_iterations=16)
    trainer = GRPOTrainer(model, args=config, **ef_trl.make("envfactory/Airline-v0").kwargs())

`make` returns a `TRLSpec`: `environment_factory` (an `EnvFactory`: TRL calls it for each
concurrent rollout; picklable, for TRL's async GRPO), `train_dataset` (one row per task: the
env's system prompt and the user's request as the chat prompt, plus `task_id`) and
`reward_funcs` (`[record_final_message]`, see below).

What TRL gets, and how:

- **Full tool schemas.** TRL lists an environment's public methods as tools and transformers
  derives each schema from the Python signature and docstring, which drops enums, bounds and
  nested item schemas. Here each tool on the instance is a `SchemaTool`: a `dict` holding the
  env's exact OpenAI function schema that is also callable. `apply_chat_template` renders a dict
  tool verbatim and the response parser types parsed arguments with it, so the prompt shows the
  same schemas as `info["tools"]`. (The class also carries a plain method per tool, with a
  signature and docstring generated from the schema, as a fallback for code that looks tools up
  on the class.)
- **The env's reward** as `get_reward()`: the episode's `RewardBreakdown.total`, from the
  SQLite state, exactly as `env.step` computes it.
- **One task per GRPO group.** TRL gives every completion of a group the same dataset row;
  `reset(task_id=...)` puts the env on that task and rolls its database back to the pristine
  state, so the whole group starts from the same state.
- **The final answer.** TRL ends a rollout at the first assistant message without tool calls and
  never shows it to the environment, yet the env scores what the agent tells the user (required
  outputs, distractors). `record_final_message` is a reward function that hands each rollout's
  final assistant message to its env (`env.step(text)`, as at evaluation time) and returns 0.0;
  TRL runs `reward_funcs` before `get_reward`, so the env scores the finished episode. Without
  it, `get_reward` scores the episode with nothing said to the user (and warns once).

Tool calls go through `env.step` as Qwen3 `<tool_call>` text, so argument validation, the call
log, per-call savepoints and turn limits are the env's own. Differences from the `rollout_func`
path of `train.py` (see the README): TRL parses the model's text, so a malformed call reaches the
env only as the final message, and the first plain message ends the episode (the scripted user
cannot answer a question).
"""

from __future__ import annotations

import inspect
import keyword
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gymnasium as gym

import envfactory_gym  # noqa: F401  (registers the env ids)
from envfactory_gym.actions import format_tool_call

RESERVED = frozenset({"reset", "get_reward"})
"""Names TRL gives a meaning to; no tool may take them."""
_JSON_TYPES: dict[str, Any] = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "array": list,
    "object": dict,
}


class SchemaTool(dict):  # type: ignore[type-arg]
    """One env tool as TRL sees it: the env's exact OpenAI function schema (a `dict`, which
    transformers' `apply_chat_template` renders verbatim and its response parser uses to type
    arguments) that is also callable with the tool's arguments as keywords."""

    def __init__(self, schema: dict[str, Any], call: Callable[[str, dict[str, Any]], str]) -> None:
        super().__init__(schema)
        self.__name__ = schema["function"]["name"]
        self.__doc__ = schema["function"].get("description", "")
        self._call = call

    def __call__(self, **arguments: Any) -> str:
        return self._call(self.__name__, arguments)


class EnvfactoryTRLEnv:
    """Base class of the per-env classes `environment_factory` builds: one envfactory episode
    per TRL rollout. Public methods are what TRL calls: `reset`, `get_reward` and one method per
    tool (an instance attribute `SchemaTool`). Everything else is private, since TRL would offer
    any other public method to the model as a tool."""

    env_id: ClassVar[str] = ""
    env_kwargs: ClassVar[dict[str, Any]] = {}
    _warned: ClassVar[bool] = False

    def __init__(self) -> None:
        self._env = gym.make(self.env_id, **self.env_kwargs)
        self._core: envfactory_gym.ToolUseEnv = self._env.unwrapped  # type: ignore[assignment]
        self._answered = False
        for schema in self._core.tool_schemas:
            setattr(self, schema["function"]["name"], SchemaTool(schema, self._call_tool))

    @property
    def episode(self) -> envfactory_gym.ToolUseEnv:
        """The envfactory env under this rollout (its task, messages, reward breakdown)."""
        return self._core

    def reset(self, task_id: str | None = None, **row: Any) -> None:
        """Start the episode of the dataset row's `task_id` from the pristine database. TRL calls
        this with every column of the row; the prompt is already in the row, so nothing is
        appended to it (returns None)."""
        if task_id is None:
            raise ValueError(
                f"{self.env_id}: reset() needs the dataset row's `task_id`; build the dataset "
                "with envfactory_gym.integrations.trl.dataset() (or make())"
            )
        env_id = row.get("env_id")
        if env_id is not None and env_id != self.env_id:
            raise ValueError(f"row of {env_id} given to a {self.env_id} environment")
        self._env.reset(options={"task_id": task_id})
        self._answered = False

    def get_reward(self) -> float:
        """The episode's reward (`RewardBreakdown.total`): final once `record_final_message`
        has given the env the agent's last message, else the score of the episode so far."""
        if self._core.task is None:
            return 0.0
        if self._core.done:
            assert self._core.last_reward is not None
            return float(self._core.last_reward.total)
        if not self._answered and not type(self)._warned:
            type(self)._warned = True
            warnings.warn(
                "get_reward() before the agent's final message reached the env: pass "
                "reward_funcs=[envfactory_gym.integrations.trl.record_final_message] (make() "
                "does) so that required outputs stated to the user are scored",
                stacklevel=2,
            )
        return float(self._core.score().total)

    # ----- private: TRL must not see these as tools -------------------------------------------
    def _call_tool(self, name: str, arguments: dict[str, Any]) -> str:
        """Run one call through `env.step` (validation, savepoint, call log, turn limit) and
        return the tool's result text."""
        if self._core.task is None or self._core.done:
            return "Error: the episode is over; no more tool calls are run."
        observation, *_, info = self._env.step(format_tool_call(name, arguments))
        results = [m["content"] for m in info["new_messages"] if m["role"] == "tool"]
        return results[-1] if results else observation

    def _record_final_message(self, text: str) -> None:
        """Give the env the agent's final message (what it tells the user), as `env.step`."""
        self._answered = True
        if self._core.task is not None and not self._core.done:
            self._env.step(text)


def record_final_message(
    completions: list[Any], environments: list[Any] | None = None, **_: Any
) -> list[float]:
    """A TRL reward function that hands each rollout's final assistant message to its env and
    returns 0.0 for each (the reward is the env's `get_reward`, which TRL runs afterwards).

    A rollout that ended on a tool result (tool-iteration or length limit) has no final message
    and is scored as it stands."""
    for completion, env in zip(completions, environments or [], strict=False):
        if not isinstance(env, EnvfactoryTRLEnv):
            continue
        last = completion[-1] if isinstance(completion, list) and completion else None
        if isinstance(completion, str):
            env._record_final_message(completion)
        elif last is not None and last.get("role") == "assistant" and not last.get("tool_calls"):
            content = last.get("content") or ""
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
            env._record_final_message(content)
    return [0.0] * len(completions)


_CLASSES: dict[tuple[str, str], type[EnvfactoryTRLEnv]] = {}


class EnvFactory:
    """`GRPOTrainer(environment_factory=...)` for one env id: each call returns a fresh env (TRL
    makes one per concurrent rollout and reuses them). Picklable, as TRL's async GRPO needs for
    the factories it sends to worker processes; the per-env class (`env_class`) is built once per
    process, so every instance of an env id has the same class (TRL matches `get_reward` by it)."""

    def __init__(self, env_id: str, **env_kwargs: Any) -> None:
        self.env_id = env_id
        self.env_kwargs = env_kwargs

    @property
    def env_class(self) -> type[EnvfactoryTRLEnv]:
        key = (self.env_id, repr(sorted(self.env_kwargs.items())))
        if key not in _CLASSES:
            _CLASSES[key] = _env_class(self.env_id, self.env_kwargs)
        return _CLASSES[key]

    def __call__(self) -> EnvfactoryTRLEnv:
        return self.env_class()

    def __repr__(self) -> str:
        return f"EnvFactory({self.env_id!r})"


def environment_factory(env_id: str, **env_kwargs: Any) -> EnvFactory:
    """What to pass as `GRPOTrainer(environment_factory=...)` for `env_id`; `env_kwargs` go to
    `gym.make` (e.g. `max_turns`, `reward_config`)."""
    factory = EnvFactory(env_id, **env_kwargs)
    factory.env_class  # noqa: B018  (build the class now: a bad env id or tool name fails here)
    return factory


def _env_class(env_id: str, env_kwargs: dict[str, Any]) -> type[EnvfactoryTRLEnv]:
    """The per-env subclass: one generated fallback method per tool (see `_fallback_method`)."""
    probe = gym.make(env_id, **env_kwargs).unwrapped
    namespace: dict[str, Any] = {"env_id": env_id, "env_kwargs": dict(env_kwargs)}
    for schema in probe.tool_schemas:
        name = schema["function"]["name"]
        if name in RESERVED or name.startswith("_") or hasattr(EnvfactoryTRLEnv, name):
            raise ValueError(f"{env_id}: tool name {name!r} clashes with the TRL environment API")
        namespace[name] = _fallback_method(schema)
    probe.close()
    class_name = "".join(c for c in env_id.split("/")[-1].split("-")[0] if c.isalnum())
    return type(f"{class_name}TRLEnv", (EnvfactoryTRLEnv,), namespace)


def dataset(
    env_id: str | Sequence[str], split: str = "train", tasks: Sequence[str] | None = None
) -> Any:
    """A `datasets.Dataset` with one row per task of `split` (or the given task ids): `prompt`
    (the env's system prompt and the user's request), `task_id`, `env_id`, and, for several env
    ids, `environment` (the key TRL routes a row by when `environment_factory` is a dict)."""
    from datasets import Dataset

    ids = [env_id] if isinstance(env_id, str) else list(env_id)
    rows: dict[str, list[Any]] = {"prompt": [], "task_id": [], "env_id": []}
    for one in ids:
        core = gym.make(one).unwrapped
        chosen = [core.package.task(t) for t in tasks] if tasks else core.package.tasks_for(split)
        for task in chosen:
            rows["prompt"].append(
                [
                    {"role": "system", "content": core.system_prompt},
                    {"role": "user", "content": task.instruction},
                ]
            )
            rows["task_id"].append(task.id)
            rows["env_id"].append(one)
        core.close()
    if len(ids) > 1:
        rows["environment"] = list(rows["env_id"])
    return Dataset.from_dict(rows)


@dataclass
class TRLSpec:
    """What `GRPOTrainer` needs for one or more envfactory envs; `kwargs()` spreads into it."""

    environment_factory: EnvFactory | dict[str, EnvFactory]
    train_dataset: Any
    reward_funcs: list[Callable[..., list[float]]] = field(
        default_factory=lambda: [record_final_message]
    )

    def kwargs(self) -> dict[str, Any]:
        return {
            "environment_factory": self.environment_factory,
            "train_dataset": self.train_dataset,
            "reward_funcs": list(self.reward_funcs),
        }


def make(
    env_id: str | Sequence[str],
    split: str = "train",
    tasks: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> TRLSpec:
    """`environment_factory`, `train_dataset` and `reward_funcs` for `env_id` (or several ids:
    then a dict factory, and rows routed by their `environment` column)."""
    ids = [env_id] if isinstance(env_id, str) else list(env_id)
    factories = {one: environment_factory(one, **env_kwargs) for one in ids}
    factory = factories[ids[0]] if isinstance(env_id, str) else factories
    return TRLSpec(factory, dataset(env_id, split, tasks))


# ----- the fallback methods: a signature and docstring generated from the schema ------------------
def _fallback_method(schema: dict[str, Any]) -> Callable[..., str]:
    """A plain method for one tool, for code that reads tools off the class: it dispatches to the
    env, and its signature and Google docstring give transformers the schema's types, enums and
    descriptions (bounds and nested items cannot be said this way: `SchemaTool` carries them)."""
    function = schema["function"]
    name = function["name"]
    parameters = function.get("parameters", {})
    properties: dict[str, Any] = parameters.get("properties", {})
    required = set(parameters.get("required", []))

    def method(self: EnvfactoryTRLEnv, **arguments: Any) -> str:
        return self._call_tool(name, arguments)

    method.__name__ = method.__qualname__ = name
    args_doc, params, annotations = [], [], {}
    if all(p.isidentifier() and not keyword.iskeyword(p) for p in properties):
        params.append(inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD))
        ordered = sorted(properties, key=lambda p: p not in required)
        for prop in ordered:
            hint = _python_type(properties[prop])
            if prop not in required:
                hint = hint | None
            annotations[prop] = hint
            default = inspect.Parameter.empty if prop in required else None
            params.append(
                inspect.Parameter(
                    prop, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=hint
                )
            )
            text = " ".join(str(properties[prop].get("description", prop)).split())
            args_doc.append(f"    {prop}: {text}")
        annotations["return"] = str
        method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
        method.__annotations__ = annotations
    description = " ".join(str(function.get("description", name)).split())
    method.__doc__ = description + ("\n\nArgs:\n" + "\n".join(args_doc) if args_doc else "")
    return method


def _python_type(prop: dict[str, Any]) -> Any:
    if isinstance(prop.get("enum"), list) and prop["enum"]:
        return Literal[tuple(prop["enum"])]  # type: ignore[valid-type]
    kind = prop.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else "string"
    return _JSON_TYPES.get(str(kind), str)
