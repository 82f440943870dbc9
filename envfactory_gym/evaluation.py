"""Run an agent over an env's tasks and summarize the rewards."""

from __future__ import annotations

import time
from typing import Any, Protocol

import gymnasium as gym
from tqdm import tqdm

from envfactory_gym.tasks import Task


class EpisodeAgent(Protocol):
    def reset(self, task: Task) -> None: ...
    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str: ...


def run_episode(env: gym.Env, agent: EpisodeAgent, task_id: str, seed: int = 0) -> dict[str, Any]:
    """Play one task to the end; return its reward breakdown and conversation length."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    tools, messages = info["tools"], info["messages"]  # on reset; steps add new_messages
    agent.reset(env.unwrapped.task)
    terminated = truncated = False
    reward, turns = 0.0, 0
    while not (terminated or truncated):
        action = agent.act(messages, tools)
        obs, reward, terminated, truncated, info = env.step(action)
        messages.extend(info["new_messages"])
        turns += 1
    return {
        "task_id": task_id,
        "reward": reward,
        "success": info["success"],
        "turns": turns,
        "truncated": truncated,
        "breakdown": info["reward_breakdown"],
    }


def evaluate(
    env_id: str,
    agent: EpisodeAgent,
    agent_name: str,
    split: str = "all",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Play every task of a split once and report success rate, mean reward and per-task detail."""
    env = gym.make(env_id)
    tasks = env.unwrapped.package.tasks_for(split)
    start = time.perf_counter()
    per_task = [
        run_episode(env, agent, task.id, seed)
        for task in tqdm(tasks, desc=f"{agent_name} on {env_id}", disable=not progress)
    ]
    env.close()
    n = len(per_task)
    return {
        "env": env_id,
        "agent": agent_name,
        "split": split,
        "tasks": n,
        "success_rate": sum(r["success"] for r in per_task) / n if n else 0.0,
        "mean_reward": sum(r["reward"] for r in per_task) / n if n else 0.0,
        "seconds": time.perf_counter() - start,
        "per_task": per_task,
    }
