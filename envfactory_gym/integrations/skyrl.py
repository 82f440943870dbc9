"""SkyRL-Gym (`skyrl-gym`) over any envfactory env.

One line of glue::

    env = envfactory_gym.integrations.skyrl.make("envfactory/Airline-v0", task_id="airline-book-00")

Importing this module registers the env class with SkyRL-Gym as `"envfactory"`; `make` returns
`skyrl_gym.make("envfactory", extras=...)`. For SkyRL training, `dataset_rows` writes the rows
SkyRL's dataset loader reads (`prompt`, `env_class: "envfactory"`, `reward_spec`,
`extra_info: {"env_id", "task_id"}`); SkyRL then builds one env per row with those `extras`.

SkyRL's contract: `init(prompt)` returns the chat prompt, `step(action: str)` returns
`observations` (messages to append: one `tool` message per call, or the user's reply), `reward`
(the env's episode reward on the last step, else 0), `done` and `metadata` (task id, turn, and on
the last step the reward breakdown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym

import envfactory_gym  # noqa: F401  (registers the env ids)

try:
    import skyrl_gym
    from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "envfactory_gym.integrations.skyrl needs skyrl-gym: pip install 'envfactory-gym[skyrl]'"
    ) from exc

ENV_CLASS = "envfactory"
"""The name the env class is registered under in SkyRL-Gym (a dataset row's `env_class`)."""


class EnvfactorySkyRLEnv(BaseTextEnv):
    """A SkyRL-Gym text env over one envfactory task. `extras` (SkyRL passes a dataset row's
    fields) must name the task: `extras["extra_info"]` or `extras` itself holds `env_id` and
    `task_id`; `env_config` may hold `gym.make` keyword arguments (e.g. `max_turns`)."""

    def __init__(self, env_config: Any = None, extras: dict[str, Any] | None = None) -> None:
        super().__init__()
        extras = dict(extras or {})
        info = {**extras, **dict(extras.get("extra_info") or {})}
        if "env_id" not in info or "task_id" not in info:
            raise ValueError("extras must give env_id and task_id (directly or in extra_info)")
        self.env_id: str = info["env_id"]
        self.task_id: str = info["task_id"]
        self.env = gym.make(self.env_id, **dict(env_config or {}))
        self.core: envfactory_gym.ToolUseEnv = self.env.unwrapped  # type: ignore[assignment]
        self.max_turns = self.core.max_turns
        self.tools: list[dict[str, Any]] = []
        self.reward_breakdown: dict[str, Any] | None = None

    def init(self, prompt: Any = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Reset to the task; return the env's own prompt (system prompt with the policy, the
        user's request) and `{"tools": schemas, "task_id": ...}`. A given `prompt` is ignored:
        the env's is authoritative (the two are equal for rows from `dataset_rows`)."""
        _, info = self.env.reset(options={"task_id": self.task_id})
        self.turns = 0
        self.tools = info["tools"]
        return info["messages"], {"tools": info["tools"], "task_id": self.task_id}

    def step(self, action: str) -> BaseTextEnvStepOutput:
        self.turns += 1
        _, reward, terminated, truncated, info = self.env.step(action)
        observations = [
            {k: v for k, v in m.items() if k in ("role", "content", "tool_call_id", "name")}
            for m in info["new_messages"]
            if m["role"] != "assistant"
        ]
        done = terminated or truncated
        metadata: dict[str, Any] = {"task_id": self.task_id, "turn": info["turn"]}
        if done:
            self.reward_breakdown = info["reward_breakdown"]
            metadata |= {"reward_breakdown": info["reward_breakdown"], "success": info["success"]}
        return BaseTextEnvStepOutput(
            observations=observations, reward=float(reward), done=done, metadata=metadata
        )

    def get_metrics(self) -> dict[str, Any]:
        breakdown = self.reward_breakdown or {}
        return {
            "turns": self.turns,
            "success": float(bool(breakdown.get("success"))),
            "reward": float(breakdown.get("total", 0.0)),
        }

    def close(self) -> None:
        self.env.close()


def register() -> None:
    """Register `EnvfactorySkyRLEnv` with SkyRL-Gym as `"envfactory"` (once per process)."""
    if ENV_CLASS not in skyrl_gym.registry:
        skyrl_gym.register(id=ENV_CLASS, entry_point=f"{__name__}:EnvfactorySkyRLEnv")


def make(env_id: str, task_id: str | None = None, **env_kwargs: Any) -> EnvfactorySkyRLEnv:
    """`skyrl_gym.make("envfactory")` for one task of `env_id` (the first train task if none)."""
    register()
    if task_id is None:
        task_id = gym.make(env_id).unwrapped.package.tasks_for("train")[0].id
    extras = {"extra_info": {"env_id": env_id, "task_id": task_id}}
    return skyrl_gym.make(ENV_CLASS, env_config=env_kwargs, extras=extras)  # type: ignore[return-value]


def dataset_rows(
    env_ids: str | Sequence[str], split: str = "train", data_source: str = "envfactory"
) -> list[dict[str, Any]]:
    """SkyRL training rows, one per task: `prompt` (system + user messages), `env_class`,
    `reward_spec` (method `env`: the env computes the reward) and `extra_info`."""
    rows = []
    for env_id in [env_ids] if isinstance(env_ids, str) else env_ids:
        core = gym.make(env_id).unwrapped
        for task in core.package.tasks_for(split):
            rows.append(
                {
                    "data_source": data_source,
                    "prompt": [
                        {"role": "system", "content": core.system_prompt},
                        {"role": "user", "content": task.instruction},
                    ],
                    "env_class": ENV_CLASS,
                    "reward_spec": {"method": "env", "ground_truth": None},
                    "extra_info": {"env_id": env_id, "task_id": task.id},
                }
            )
        core.close()
    return rows


register()  # importing this module makes `env_class: "envfactory"` resolvable in SkyRL
