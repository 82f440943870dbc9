"""The PettingZoo view of an env: the `assistant` and the `user` are both policies.

    from envfactory_gym.multiagent import env, parallel_env
    aec = env("envfactory/Airline-v0")            # turn by turn (AEC)
    par = parallel_env("envfactory/Airline-v0")   # both act each cycle; only the one whose
                                                  # turn it is counts

The episode is one task of the Gymnasium env (same tools, database, reward). The user opens with
the task's instruction. Then:
- `assistant` (action: raw model text, as in the Gymnasium env) calls tools, which answer it
  directly, or writes to the user, which hands the turn to `user`;
- `user` (action: its reply as text) answers; replying `USER_STOP` ("###STOP###") ends the
  conversation, and the episode is scored.
Observations: the assistant sees what the Gymnasium env shows it (tool results, the user's
replies). The user sees only the assistant's messages to it, never a tool output or the task's
ground truth; its brief (the instruction it opened with and the facts it knows) is in
`infos["user"]["brief"]` from reset on. Both agents get the episode's reward at its end (the
conversation succeeds or fails as a whole). Truncation after the env's `max_turns` assistant
turns.

`reset` takes the Gymnasium env's options (`task_id`, `split`). PettingZoo's API test resets with
made-up options, so other keys are dropped with a warning here, where the Gymnasium env raises.

Requires the `multiagent` extra (`pip install "envfactory-gym[multiagent]"`).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from pettingzoo import AECEnv, ParallelEnv

from envfactory_gym.actions import parse_action
from envfactory_gym.env import RESET_OPTIONS, ToolUseEnv
from envfactory_gym.registry import package_name
from envfactory_gym.tasks import Task

ASSISTANT, USER = "assistant", "user"
USER_STOP = "###STOP###"
"""What the user replies to end the conversation."""


class Text(str):
    """An observation: a `str` that also carries the text space's numpy dtype, which
    PettingZoo's API test compares with the observation space's."""

    dtype = np.dtype("U")


class _DeferredUser:
    """The env's user simulator: it returns the reply the `user` agent gave."""

    def __init__(self) -> None:
        self.next_reply: str | None = None

    def reset(self, task: Task) -> None:
        self.next_reply = None

    def reply(self, agent_message: str) -> str | None:
        return self.next_reply


def _brief(task: Task) -> str:
    facts = "\n".join(f"- {name.replace('_', ' ')}: {value}" for name, value in
                      task.user_facts.items())  # fmt: skip
    return (
        "You are the customer. You opened the conversation with:\n"
        f"{task.instruction}\n\nWhat you know, to share only when asked:\n{facts or '- nothing'}"
        f"\n\nWhen your request is handled (or cannot be), reply {USER_STOP}."
    )


class _Conversation:
    """The state both PettingZoo views share: one Gymnasium env and whose turn it is."""

    def __init__(self, gym_id: str, **env_kwargs: Any) -> None:
        self.user = _DeferredUser()
        self.env = ToolUseEnv(package_name(gym_id), user=self.user, **env_kwargs)
        self.gym_id = gym_id
        self.turn = ASSISTANT
        self.pending: str | None = None  # the assistant's message awaiting the user's reply
        self.observations = {ASSISTANT: "", USER: ""}
        self.reward = 0.0
        self.terminated = self.truncated = False
        self.info: dict[str, Any] = {}
        self.brief = ""

    def reset(self, seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        options = dict(options or {})
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:  # PettingZoo's API test resets with made-up options: warn, do not raise
            warnings.warn(
                f"ignoring unknown reset option(s) {unknown}; valid: {', '.join(RESET_OPTIONS)}",
                stacklevel=3,
            )
        obs, info = self.env.reset(
            seed=seed, options={k: v for k, v in options.items() if k in RESET_OPTIONS}
        )
        assert self.env.task is not None
        self.turn, self.pending, self.reward = ASSISTANT, None, 0.0
        self.terminated = self.truncated = False
        self.observations = {ASSISTANT: obs, USER: ""}
        self.info, self.brief = info, _brief(self.env.task)
        return self.infos()

    def act(self, agent: str, action: str) -> None:
        """Apply the action of the agent whose turn it is."""
        if agent == ASSISTANT:
            parsed = parse_action(action) if isinstance(action, str) else None
            if parsed is not None and parsed.message and not parsed.is_tool_turn:
                self.pending, self.turn = action, USER
                self.observations[USER] = parsed.message
                return
            self._env_step(action)
        else:
            if not isinstance(action, str):
                raise TypeError(
                    f"the user's action is its reply (str), got {type(action).__name__}"
                )
            self.user.next_reply = None if action.strip() == USER_STOP else action
            assert self.pending is not None
            self._env_step(self.pending)
            self.pending, self.turn = None, ASSISTANT

    def _env_step(self, action: str) -> None:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.observations[ASSISTANT] = obs
        self.reward, self.terminated, self.truncated, self.info = (
            reward, terminated, truncated, info,
        )  # fmt: skip

    def infos(self) -> dict[str, dict[str, Any]]:
        """The assistant's: the Gymnasium env's info. The user's: its brief, the task id and,
        at the end, the reward breakdown; never a tool output."""
        shared = {k: v for k, v in self.info.items() if k in ("task_id", "reward_breakdown",
                                                                "success")}  # fmt: skip
        return {ASSISTANT: dict(self.info), USER: {"brief": self.brief, **shared}}


class ConversationAEC(AECEnv):
    """Turn by turn: `agent_selection` is whoever speaks next (see the module doc)."""

    metadata = {"name": "envfactory_conversation_v0", "is_parallelizable": False}

    def __init__(self, gym_id: str, **env_kwargs: Any) -> None:
        super().__init__()
        self.core = _Conversation(gym_id, **env_kwargs)
        self.possible_agents = [ASSISTANT, USER]
        space = self.core.env.observation_space
        self.observation_spaces = {a: space for a in self.possible_agents}
        self.action_spaces = {a: self.core.env.action_space for a in self.possible_agents}

    def observation_space(self, agent: str) -> Any:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        self.infos = self.core.reset(seed, options)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.agent_selection = ASSISTANT

    def observe(self, agent: str) -> str:
        return Text(self.core.observations[agent])

    def step(self, action: Any) -> None:
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            self._was_dead_step(action)
            return
        self._cumulative_rewards[agent] = 0.0
        self.core.act(agent, action)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self.infos = self.core.infos()
        if self.core.terminated or self.core.truncated:
            for name in self.agents:
                self.rewards[name] = self.core.reward
                self.terminations[name] = self.core.terminated
                self.truncations[name] = self.core.truncated
        self.agent_selection = self.core.turn
        self._accumulate_rewards()

    def close(self) -> None:
        self.core.env.close()


class ConversationParallel(ParallelEnv):
    """Both agents act each cycle; only the action of the agent whose turn it is counts (the
    other's is ignored, and `infos[agent]["to_act"]` says whose turn is next)."""

    metadata = {"name": "envfactory_conversation_parallel_v0"}

    def __init__(self, gym_id: str, **env_kwargs: Any) -> None:
        self.core = _Conversation(gym_id, **env_kwargs)
        self.possible_agents = [ASSISTANT, USER]
        self.observation_spaces = {a: self.core.env.observation_space for a in self.possible_agents}
        self.action_spaces = {a: self.core.env.action_space for a in self.possible_agents}

    def observation_space(self, agent: str) -> Any:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> Any:
        return self.action_spaces[agent]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
        infos = self.core.reset(seed, options)
        self.agents = list(self.possible_agents)
        for agent in self.agents:
            infos[agent]["to_act"] = self.core.turn
        return self._observations(), infos

    def _observations(self) -> dict[str, str]:
        return {agent: Text(text) for agent, text in self.core.observations.items()}

    def step(self, actions: dict[str, Any]) -> tuple[dict, dict, dict, dict, dict]:
        self.core.act(self.core.turn, actions[self.core.turn])
        done = self.core.terminated or self.core.truncated
        rewards = {a: self.core.reward if done else 0.0 for a in self.agents}
        terminations = {a: self.core.terminated for a in self.agents}
        truncations = {a: self.core.truncated for a in self.agents}
        infos = self.core.infos()
        for agent in self.agents:
            infos[agent]["to_act"] = self.core.turn
        observations = self._observations()
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    def close(self) -> None:
        self.core.env.close()


def env(gym_id: str = "envfactory/Airline-v0", **env_kwargs: Any) -> ConversationAEC:
    """The AEC (turn by turn) env over a registered envfactory env id."""
    return ConversationAEC(gym_id, **env_kwargs)


def parallel_env(gym_id: str = "envfactory/Airline-v0", **env_kwargs: Any) -> ConversationParallel:
    """The parallel env over a registered envfactory env id."""
    return ConversationParallel(gym_id, **env_kwargs)
