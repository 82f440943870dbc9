"""Multi-turn rollouts shared by GRPO, RLOO and PPO: the policy writes every assistant turn.

An episode is one token stream: the prompt (system prompt with the policy, tool schemas, the
user's request) followed by the completion, where the policy's own tokens alternate with what
the environment says back (tool results, the scripted user's replies). `mask` is 1 exactly on
the policy's own tokens, so tool results, user turns and the prompt never enter a loss.

The assistant's text is never re-rendered: its sampled tokens stay as they are and only the
environment's new messages are rendered with the chat template (the tokens after the end of
the assistant's turn), so training scores exactly what was sampled.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

GenerateFn = Callable[[list[list[int]]], tuple[list[list[int]], list[list[float]] | None]]
"""Prompt token ids (one list per sequence) -> (new token ids, their sampling logprobs or None)."""

LockstepFn = Callable[[int], int]
"""Local number of sequences to generate -> the largest number over all processes."""

REWARD_COMPONENTS = ("trace", "state", "outputs", "outcome", "penalty", "tau")


class ChatFormatter:
    """Token ids for prompts and for the environment's turns, from the tokenizer's chat template."""

    _DUMMY = [{"role": "user", "content": "."}, {"role": "assistant", "content": "."}]

    def __init__(self, tokenizer: Any, chat_template_kwargs: dict[str, Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.kwargs = dict(chat_template_kwargs or {})
        self.eos_id: int = tokenizer.eos_token_id
        self.stop_ids = {self.eos_id}
        if tokenizer.pad_token_id is not None:
            self.stop_ids.add(tokenizer.pad_token_id)
        dummy = self._render(self._DUMMY, add_generation_prompt=False)
        if dummy.count(self.eos_id) != 2:
            raise ValueError("the chat template must end each turn with the tokenizer's eos token")

    def _render(self, messages: list[dict[str, Any]], **kwargs: Any) -> list[int]:
        ids = self.tokenizer.apply_chat_template(
            messages, tokenize=True, return_dict=False, **self.kwargs, **kwargs
        )
        return list(ids)

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """The episode's opening: system prompt, tools, user request, then the assistant header."""
        return self._render(messages, tools=tools or None, add_generation_prompt=True)

    def suffix_ids(self, messages: list[dict[str, Any]]) -> list[int]:
        """Tokens after an assistant turn's eos: `messages` (tool results or a user reply), then
        the next assistant header. Rendered after a two-turn dummy; the suffix starts after its
        second eos, so the template's treatment of earlier turns cannot leak in."""
        full = self._render(self._DUMMY + list(messages), add_generation_prompt=True)
        second_eos = [i for i, token in enumerate(full) if token == self.eos_id][1]
        return full[second_eos + 1 :]


@dataclass
class Episode:
    """One finished multi-turn episode as token ids, mask and the env's verdict."""

    env_id: str
    task_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    """1 on the policy's own tokens; 0 on tool results, user turns and closing tokens we added."""
    logprobs: list[float] | None = None
    actions: list[str] = field(default_factory=list)
    """The decoded text of each assistant turn, as given to `env.step`."""
    reward: float = 0.0
    breakdown: dict[str, Any] = field(default_factory=dict)
    success: bool = False
    turns: int = 0
    tool_calls: int = 0
    user_turns: int = 0
    terminated: bool = False
    truncated: bool = False
    out_of_budget: bool = False
    generated_tokens: int = 0
    gen_time: float = 0.0
    env_time: float = 0.0
    done: bool = False

    @property
    def invalid_calls(self) -> int:
        """Malformed or invalid tool calls, as the env's reward counted them."""
        return int(self.breakdown.get("format_errors", 0))

    def record(self) -> dict[str, Any]:
        """A JSON-ready summary (no token ids) for logs."""
        return {
            "env_id": self.env_id,
            "task_id": self.task_id,
            "reward": self.reward,
            "success": self.success,
            "breakdown": self.breakdown,
            "turns": self.turns,
            "tool_calls": self.tool_calls,
            "user_turns": self.user_turns,
            "terminated": self.terminated,
            "truncated": self.truncated,
            "out_of_budget": self.out_of_budget,
            "prompt_tokens": len(self.prompt_ids),
            "completion_tokens": len(self.completion_ids),
            "policy_tokens": sum(self.mask),
            "actions": self.actions,
        }


Transition = tuple[Any, float, bool, bool, dict[str, Any]]
"""What `env.step` returns: (observation, reward, terminated, truncated, info)."""


class EnvSlots(Protocol):
    """Where a rollout's envs live: one env per episode of the current batch."""

    def reset(self, requests: Sequence[tuple[str, str]], tau: float | None) -> list[dict]:
        """Start one episode per `(env_id, task_id)` (with the trace weight `tau` when not
        None); their reset infos, in order. Episode i of this batch is index i below."""
        ...

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[Transition]:
        """Step the episodes at `indices`, one action each; their transitions, in order."""
        ...

    def score(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """The reward breakdown (`RewardBreakdown.model_dump()`) of each episode as it stands."""
        ...

    def close(self) -> None: ...


class LocalEnvSlots:
    """Envs in this process: the `slot`-th concurrent episode of an env id gets that env's
    `slot`-th instance, created on first use and reused from batch to batch."""

    def __init__(self, make_kwargs: dict[str, Any]) -> None:
        self.make_kwargs = dict(make_kwargs)
        self._pool: dict[str, list[Any]] = defaultdict(list)
        self._batch: list[Any] = []

    def env(self, env_id: str, slot: int = 0) -> Any:
        """The `slot`-th pooled instance of `env_id` (created on first use)."""
        import gymnasium as gym

        import envfactory_gym  # noqa: F401  (registers the envs)

        pool = self._pool[env_id]
        while len(pool) <= slot:
            kwargs = {k: dict(v) if isinstance(v, dict) else v for k, v in self.make_kwargs.items()}
            pool.append(gym.make(env_id, **kwargs))
        return pool[slot]

    def reset(self, requests: Sequence[tuple[str, str]], tau: float | None) -> list[dict]:
        slots: dict[str, int] = defaultdict(int)
        self._batch, infos = [], []
        for env_id, task_id in requests:
            env = self.env(env_id, slots[env_id])
            slots[env_id] += 1
            if tau is not None:  # our step-based schedule replaces the env's episode-based one
                env.unwrapped.reward_config.tau = tau
                env.unwrapped.reward_config.tau_final = None
            infos.append(env.reset(options={"task_id": task_id})[1])
            self._batch.append(env)
        return infos

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[Transition]:
        return [self._batch[i].step(a) for i, a in zip(indices, actions, strict=True)]

    def score(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        return [self._batch[i].unwrapped.score().model_dump() for i in indices]

    def close(self) -> None:
        for pool in self._pool.values():
            for env in pool:
                env.close()
        self._pool.clear()
        self._batch = []


class RolloutRunner:
    """Runs batches of episodes on pooled env instances (one per concurrent episode)."""

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_turns: int,
        max_new_tokens: int,
        max_episode_tokens: int,
        reward_overrides: dict[str, Any] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        env_slots: EnvSlots | None = None,
    ) -> None:
        """`env_slots`: where the envs live and step (default: `LocalEnvSlots`, this process;
        `envfactory_gym.distributed.RayEnvSlots` puts them on Ray actors)."""
        self.tokenizer = tokenizer
        self.formatter = ChatFormatter(tokenizer, chat_template_kwargs)
        self.max_turns = max_turns
        self.max_new_tokens = max_new_tokens
        self.max_episode_tokens = max_episode_tokens
        self.reward_overrides = dict(reward_overrides or {})
        self.envs: EnvSlots = env_slots or LocalEnvSlots(self.make_kwargs())

    def make_kwargs(self) -> dict[str, Any]:
        """The `gym.make` keyword arguments of every rollout env (turn limit, reward settings)."""
        return {
            "max_turns": self.max_turns,
            "reward_config": dict(self.reward_overrides),
            "disable_env_checker": True,
        }

    def env(self, env_id: str, slot: int = 0) -> Any:
        """The `slot`-th pooled in-process instance of `env_id` (local env slots only)."""
        if not isinstance(self.envs, LocalEnvSlots):
            raise TypeError("the rollout envs live in Ray actors, not in this process")
        return self.envs.env(env_id, slot)

    def close(self) -> None:
        """Release the envs (and the Ray actors holding them, with `RayEnvSlots`)."""
        self.envs.close()

    def run(
        self,
        requests: Sequence[tuple[str, str]],
        generate: GenerateFn,
        *,
        tau: float | None = None,
        lockstep: LockstepFn | None = None,
    ) -> list[Episode]:
        """Play one episode per `(env_id, task_id)` request; batched turn by turn.

        With `lockstep` (several processes), every process calls `generate` equally often and
        with as many sequences as the busiest one (padding with a 1-token dummy), as vLLM
        server mode, ZeRO-3 and FSDP generation need.
        """
        start = time.perf_counter()
        infos = self.envs.reset(list(requests), tau)
        share = (time.perf_counter() - start) / max(1, len(requests))
        episodes = []
        for (env_id, _), info in zip(requests, infos, strict=True):
            episode = Episode(
                env_id=env_id,
                task_id=info["task_id"],
                prompt_ids=self.formatter.prompt_ids(info["messages"], info["tools"]),
            )
            episode.env_time += share
            episodes.append(episode)

        while True:
            active = [i for i, ep in enumerate(episodes) if not ep.done]
            inputs = [episodes[i].prompt_ids + episodes[i].completion_ids for i in active]
            if lockstep is not None:
                width = lockstep(len(inputs))
                if width == 0:
                    break
                inputs += [[self.formatter.eos_id]] * (width - len(inputs))
            elif not inputs:
                break
            start = time.perf_counter()
            new_ids, new_logprobs = generate(inputs)
            share = (time.perf_counter() - start) / max(1, len(active))
            texts = []
            for row, index in enumerate(active):
                episodes[index].gen_time += share
                logprobs = None if new_logprobs is None else list(new_logprobs[row])
                texts.append(self._take_turn(episodes[index], list(new_ids[row]), logprobs))
            start = time.perf_counter()
            transitions = self.envs.step(active, texts)  # one batch: every active env answers
            share = (time.perf_counter() - start) / max(1, len(active))
            out_of_budget = []
            for index, text, transition in zip(active, texts, transitions, strict=True):
                episodes[index].env_time += share
                if not self._answer(episodes[index], text, transition):
                    out_of_budget.append(index)
            if out_of_budget:  # no room for another turn: score those episodes as they are
                start = time.perf_counter()
                breakdowns = self.envs.score(out_of_budget)
                share = (time.perf_counter() - start) / len(out_of_budget)
                for index, breakdown in zip(out_of_budget, breakdowns, strict=True):
                    episode = episodes[index]
                    episode.env_time += share
                    self._finish(episode, breakdown["total"], breakdown, breakdown["success"])
                    episode.truncated = episode.out_of_budget = True
        return episodes

    def _take_turn(self, ep: Episode, ids: list[int], logprobs: list[float] | None) -> str:
        """Append one sampled turn (closed by eos); its text, for the env."""
        stop = self.formatter.stop_ids
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if ep.logprobs is None and logprobs is not None and not ep.completion_ids:
            ep.logprobs = []
        self._append(ep, ids, 1, logprobs)
        ep.generated_tokens += len(ids)
        if not ids or ids[-1] not in stop:  # cut at max_new_tokens: close the turn ourselves
            self._append(ep, [self.formatter.eos_id], 0)
        return text

    def _answer(self, ep: Episode, text: str, transition: Transition) -> bool:
        """Record the env's answer to `text` and append its reply (masked out). False when the
        episode goes on but has no room for another turn (the caller scores it as it is)."""
        _, reward, terminated, truncated, info = transition
        ep.turns += 1
        ep.actions.append(text)
        new_messages = info["new_messages"][1:]  # after the assistant's own message
        ep.tool_calls += sum(1 for m in new_messages if m["role"] == "tool")
        ep.user_turns += sum(1 for m in new_messages if m["role"] == "user")
        if terminated or truncated:
            self._finish(ep, reward, info["reward_breakdown"], info["success"])
            ep.terminated, ep.truncated = terminated, truncated
            return True
        suffix = self.formatter.suffix_ids(new_messages)
        used = len(ep.completion_ids) + len(suffix) + self.max_new_tokens
        if used > self.max_episode_tokens:
            return False
        self._append(ep, suffix, 0)
        return True

    @staticmethod
    def _append(
        ep: Episode, ids: list[int], flag: int, logprobs: list[float] | None = None
    ) -> None:
        ep.completion_ids.extend(ids)
        ep.mask.extend([flag] * len(ids))
        if ep.logprobs is not None:
            ep.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(ids))

    @staticmethod
    def _finish(ep: Episode, reward: float, breakdown: dict[str, Any], success: bool) -> None:
        ep.reward, ep.breakdown, ep.success, ep.done = (
            float(reward),
            dict(breakdown),
            bool(success),
            True,
        )


def summarize(episodes: Sequence[Episode], prefix: str = "") -> dict[str, float]:
    """Per-env reward/success, reward parts, call validity, turns, tokens/s, env vs gen time."""
    if not episodes:
        return {}
    n = len(episodes)
    stats: dict[str, float] = {
        "reward": sum(e.reward for e in episodes) / n,
        "success": sum(e.success for e in episodes) / n,
        "turns": sum(e.turns for e in episodes) / n,
        "tool_calls": sum(e.tool_calls for e in episodes) / n,
        "user_turns": sum(e.user_turns for e in episodes) / n,
        "out_of_budget": sum(e.out_of_budget for e in episodes) / n,
        "completion_tokens": sum(len(e.completion_ids) for e in episodes) / n,
        "policy_tokens": sum(sum(e.mask) for e in episodes) / n,
    }
    calls = sum(e.tool_calls for e in episodes)
    invalid = sum(min(e.invalid_calls, e.tool_calls) for e in episodes)
    stats["tool_call_validity"] = 1.0 - invalid / calls if calls else 1.0
    for key in REWARD_COMPONENTS:
        values = [float(e.breakdown[key]) for e in episodes if key in e.breakdown]
        if values:
            stats[f"reward_{key}"] = sum(values) / len(values)
    gen_time = sum(e.gen_time for e in episodes)
    env_time = sum(e.env_time for e in episodes)
    generated = sum(e.generated_tokens for e in episodes)
    stats["time/generation_s"] = gen_time
    stats["time/env_s"] = env_time
    stats["time/env_fraction"] = env_time / (env_time + gen_time) if gen_time + env_time else 0.0
    stats["tokens_per_s"] = generated / gen_time if gen_time else 0.0
    by_env: dict[str, list[Episode]] = defaultdict(list)
    for episode in episodes:
        by_env[episode.env_id].append(episode)
    for env_id, group in by_env.items():
        name = env_id.split("/")[-1]
        stats[f"env/{name}/reward"] = sum(e.reward for e in group) / len(group)
        stats[f"env/{name}/success"] = sum(e.success for e in group) / len(group)
    return {prefix + key: value for key, value in stats.items()}


def group_stats(rewards: Sequence[float], group_size: int) -> dict[str, float]:
    """How many groups (consecutive `group_size` episodes of one task) have no reward variance."""
    groups = [rewards[i : i + group_size] for i in range(0, len(rewards), group_size)]
    groups = [g for g in groups if len(g) == group_size]
    if not groups or group_size < 2:
        return {}
    flat = sum(1 for g in groups if max(g) - min(g) < 1e-9)
    return {"groups/zero_variance_frac": flat / len(groups), "groups/count": float(len(groups))}
