"""OpenEnv (`openenv-core`) over any envfactory env: an `Environment`, its server and a client.

One line of glue, in process::

    env = envfactory_gym.integrations.openenv.make("envfactory/Airline-v0")
    obs = env.reset(task_id="airline-flight_status-00")       # EnvfactoryObservation
    obs = env.step(EnvfactoryAction(text='<tool_call>{"name": ...}</tool_call>'))

or served (OpenEnv's FastAPI app: HTTP + the WebSocket sessions its clients use; each session
gets its own env and in-memory database) and driven by OpenEnv's own `EnvClient`::

    app = envfactory_gym.integrations.openenv.create_app("envfactory/Airline-v0")  # uvicorn
    with EnvfactoryClient(base_url="http://localhost:8000").sync() as client:
        result = client.reset(task_id="airline-flight_status-00")

The action is the model's raw text, as for `env.step`; the observation carries the text, the
messages this step added, the tool schemas (on reset), and on the last step the reward and its
breakdown. `reset` takes `seed`, `episode_id`, `task_id` and `split`.
"""

from __future__ import annotations

import uuid
from typing import Any

import gymnasium as gym

import envfactory_gym  # noqa: F401  (registers the env ids)

try:  # the module defines its classes only when openenv-core is installed
    from openenv.core.client_types import StepResult
    from openenv.core.env_client import EnvClient
    from openenv.core.env_server.interfaces import Environment
    from openenv.core.env_server.types import Action, EnvironmentMetadata, Observation, State
    from pydantic import Field
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "envfactory_gym.integrations.openenv needs openenv-core: "
        "pip install 'envfactory-gym[openenv]'"
    ) from exc


class EnvfactoryAction(Action):
    """The model's raw text: `<tool_call>` blocks and/or a message to the user."""

    text: str = Field(description="The model's raw output for this turn")


class EnvfactoryObservation(Observation):
    """What the agent must answer next, plus the chat log and (on reset) the tool schemas."""

    text: str = Field(default="", description="The observation text (tool results, user reply)")
    task_id: str = Field(default="", description="The task of this episode")
    new_messages: list[dict[str, Any]] = Field(
        default_factory=list, description="OpenAI-style messages this step added"
    )
    tools: list[dict[str, Any]] = Field(
        default_factory=list, description="Tool schemas (OpenAI function format), on reset"
    )
    truncated: bool = Field(default=False, description="The episode hit its turn limit")
    reward_breakdown: dict[str, Any] | None = Field(
        default=None, description="The reward's terms, on the episode's last step"
    )


class EnvfactoryState(State):
    """The session's episode: env id, task id, and whether it is over."""

    env_id: str = ""
    task_id: str = ""
    done: bool = False


class EnvfactoryEnvironment(Environment[EnvfactoryAction, EnvfactoryObservation, EnvfactoryState]):
    """An OpenEnv `Environment` over one envfactory env (one in-memory database per instance,
    so the server may run concurrent sessions)."""

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env_id: str = "envfactory/Airline-v0", **env_kwargs: Any) -> None:
        super().__init__()
        self.env_id = env_id
        self.env = gym.make(env_id, **env_kwargs)
        self._state = EnvfactoryState(env_id=env_id)

    def reset(
        self,
        seed: int | None = None,
        episode_id: str | None = None,
        task_id: str | None = None,
        split: str | None = None,
        **kwargs: Any,
    ) -> EnvfactoryObservation:
        if kwargs:
            raise ValueError(f"unknown reset argument(s) {sorted(kwargs)}; valid: task_id, split")
        options = {k: v for k, v in (("task_id", task_id), ("split", split)) if v is not None}
        text, info = self.env.reset(seed=seed, options=options)
        self._state = EnvfactoryState(
            env_id=self.env_id,
            task_id=info["task_id"],
            episode_id=episode_id or str(uuid.uuid4()),
            step_count=0,
        )
        return EnvfactoryObservation(
            text=text,
            task_id=info["task_id"],
            new_messages=info["messages"],
            tools=info["tools"],
            done=False,
            reward=0.0,
        )

    def step(
        self, action: EnvfactoryAction, timeout_s: float | None = None, **kwargs: Any
    ) -> EnvfactoryObservation:
        text, reward, terminated, truncated, info = self.env.step(action.text)
        self._state.step_count += 1
        self._state.done = terminated or truncated
        return EnvfactoryObservation(
            text=text,
            task_id=info["task_id"],
            new_messages=info["new_messages"],
            done=terminated or truncated,
            truncated=truncated,
            reward=float(reward),
            reward_breakdown=info.get("reward_breakdown"),
            metadata={"success": info["success"]} if "success" in info else {},
        )

    @property
    def state(self) -> EnvfactoryState:
        return self._state

    def get_metadata(self) -> EnvironmentMetadata:
        config = self.env.unwrapped.package.config
        return EnvironmentMetadata(
            name=self.env_id, description=config.description, version=str(config.version)
        )

    def close(self) -> None:
        self.env.close()


class EnvfactoryClient(EnvClient[EnvfactoryAction, EnvfactoryObservation, EnvfactoryState]):
    """OpenEnv's WebSocket client, typed for the envfactory server (`.sync()` for blocking)."""

    def _step_payload(self, action: EnvfactoryAction) -> dict[str, Any]:
        return action.model_dump()

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[EnvfactoryObservation]:
        observation = EnvfactoryObservation(
            **{**payload.get("observation", {}), "done": payload.get("done", False)},
            reward=payload.get("reward"),
        )
        return StepResult(
            observation, reward=payload.get("reward"), done=payload.get("done", False)
        )

    def _parse_state(self, payload: dict[str, Any]) -> EnvfactoryState:
        return EnvfactoryState(**payload)


def make(env_id: str, **env_kwargs: Any) -> EnvfactoryEnvironment:
    """An in-process OpenEnv `Environment` for `env_id` (`env_kwargs` go to `gym.make`)."""
    return EnvfactoryEnvironment(env_id, **env_kwargs)


def create_app(env_id: str, max_concurrent_envs: int = 64, **env_kwargs: Any) -> Any:
    """OpenEnv's FastAPI app serving `env_id`: one env per WebSocket session, up to
    `max_concurrent_envs` at once. Run it with `uvicorn` (see examples/integrations)."""
    from openenv.core.env_server.http_server import create_app as openenv_app

    return openenv_app(
        lambda: EnvfactoryEnvironment(env_id, **env_kwargs),
        EnvfactoryAction,
        EnvfactoryObservation,
        env_name=env_id,
        max_concurrent_envs=max_concurrent_envs,
    )
