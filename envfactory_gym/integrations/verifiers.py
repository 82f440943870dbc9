"""verifiers (`verifiers.v1`, 0.4) over any envfactory env: a taskset and the env that plays it.

One line of glue::

    env = envfactory_gym.integrations.verifiers.make("envfactory/Airline-v0")   # a vf.Env

or from verifiers' CLI, since this module is a verifiers taskset plugin (it exports exactly one
`Taskset` and one `Env` subclass)::

    vf-eval --env.taskset.id envfactory_gym.integrations.verifiers \\
        --env.taskset.env_id envfactory/Airline-v0 ...

How an episode runs (the pattern of verifiers' own OpenEnv taskset): the task's prompt is the
user's request and its system prompt is the env's (the policy) followed by the tool schemas in
the Qwen3/Hermes `# Tools` block, written from the env's exact JSON schemas (nobody pastes them by
hand). `EnvfactoryEnv.run` plays the user and the tools: each model reply goes to `env.step`
unchanged (`<tool_call>` blocks run, `<think>` is dropped, plain text goes to the scripted user);
the observation comes back as the next user turn (tool results in `<tool_response>` blocks,
which is how Qwen3's template renders tool messages anyway) until the episode ends. The env's
reward is recorded on the trace as `envfactory_reward`, with `success` and the reward's terms
as metrics.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import gymnasium as gym

import envfactory_gym  # noqa: F401  (registers the env ids)

try:
    import verifiers.v1 as vf
    from verifiers.v1.harnesses.null.harness import NullHarnessConfig
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "envfactory_gym.integrations.verifiers needs verifiers>=0.4: "
        "pip install 'envfactory-gym[verifiers]'"
    ) from exc

__all__ = ["EnvfactoryEnv", "EnvfactoryTaskset", "make", "tools_system_prompt"]

TASKSET_ID = "envfactory_verifiers"
"""The taskset id verifiers resolves to this module. verifiers imports a taskset plugin by a
top-level module name, so importing this module also registers it under that name."""
sys.modules.setdefault(TASKSET_ID, sys.modules[__name__])

TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


def tools_system_prompt(system_prompt: str, tools: list[dict[str, Any]]) -> str:
    """`system_prompt` followed by the tool schemas as Qwen3's chat template writes them."""
    lines = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
    return f"{system_prompt}\n\n{TOOLS_HEADER}{lines}{TOOLS_FOOTER}"


class EnvfactoryData(vf.TaskData):
    """One envfactory task: which env and task, plus verifiers' prompt fields."""

    env_id: str
    task_id: str


class EnvfactoryTasksetConfig(vf.TasksetConfig):
    env_id: str = "envfactory/Airline-v0"
    """The envfactory env id."""
    split: str = "train"
    """The task split to load."""
    env_kwargs: dict[str, Any] = {}
    """Keyword arguments for `gym.make` (e.g. `max_turns`)."""


class EnvfactoryTask(vf.Task[EnvfactoryData]):
    @property
    def key(self) -> str:
        return f"{self.data.env_id}:{self.data.task_id}"


class EnvfactoryTaskset(vf.Taskset[EnvfactoryTask, EnvfactoryTasksetConfig]):
    """The tasks of one envfactory env and split, in the package's order."""

    def load(self) -> Iterator[EnvfactoryTask]:
        config = self.config
        core = gym.make(config.env_id, **config.env_kwargs).unwrapped
        system = tools_system_prompt(core.system_prompt, core.tool_schemas)
        for task in core.package.tasks_for(config.split):
            yield EnvfactoryTask(
                EnvfactoryData(
                    id=task.id,
                    name=task.id,
                    prompt=task.instruction,
                    system_prompt=system,
                    env_id=config.env_id,
                    task_id=task.id,
                ),
                config.task,
            )
        core.close()


class EnvfactoryEnvConfig(vf.EnvConfig):
    player: vf.AgentConfig = vf.AgentConfig(
        harness=NullHarnessConfig(id="null"), runtime=vf.SubprocessConfig()
    )
    """The policy: a plain chat loop (verifiers' `null` harness) in a local subprocess."""


class EnvfactoryEnv(vf.Env[EnvfactoryEnvConfig]):
    """Plays the user and the tools of an envfactory episode for the `player` agent."""

    async def run(self, task: EnvfactoryTask, agents: Any) -> None:
        config = self.taskset.config
        env_kwargs = getattr(config, "env_kwargs", {})
        env = gym.make(task.data.env_id, **env_kwargs)
        try:
            env.reset(options={"task_id": task.data.task_id})
            info: dict[str, Any] = {}
            async with agents.player.interaction(task) as interaction:
                segment = await interaction.turn()
                done = False
                while not segment.terminated:
                    observation, _, terminated, truncated, info = env.step(segment.last_reply)
                    done = terminated or truncated
                    if done:
                        break
                    segment = await interaction.turn(observation)
            record(interaction.trace, env.unwrapped, done, info)
        finally:
            env.close()


def record(trace: Any, core: Any, done: bool, info: dict[str, Any]) -> None:
    """Put the episode's reward on a verifiers trace: `envfactory_reward` (the env's total; the
    score so far if the agent stopped before the episode ended), `success` and each reward term
    as metrics."""
    breakdown = info.get("reward_breakdown") if done else core.score().model_dump()
    trace.record_reward("envfactory_reward", float(breakdown["total"]))
    trace.record_metric("success", float(bool(breakdown.get("success"))))
    for name in ("trace", "outcome", "penalty"):
        if isinstance(breakdown.get(name), int | float):
            trace.record_metric(f"envfactory_{name}", float(breakdown[name]))


def make(env_id: str, split: str = "train", **env_kwargs: Any) -> EnvfactoryEnv:
    """A verifiers `Env` over `env_id`'s `split` tasks (`env_kwargs` go to `gym.make`)."""
    config = EnvfactoryEnvConfig(
        taskset=EnvfactoryTasksetConfig(
            id=TASKSET_ID, env_id=env_id, split=split, env_kwargs=env_kwargs
        )
    )
    return EnvfactoryEnv(config)
