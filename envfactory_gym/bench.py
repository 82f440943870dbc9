"""Micro-benchmarks of one env instance: step, reset, reward, episodes per second, memory."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from envfactory_gym.actions import format_tool_call
from envfactory_gym.database import Database


def _median_us(
    fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None
) -> float:
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096


def bench(env_id: str, repeats: int = 2000, episodes: int = 300) -> dict[str, Any]:
    """Measure the hot paths of `env_id` using its first write task as the workload."""
    env = gym.make(env_id).unwrapped
    package = env.package
    write_task = next(t for t in package.tasks if any(t.expected_diff.values()))
    read_call = next(c for c in write_task.calls if package.tools[c.name].kind == "read")
    write_call = next(c for c in write_task.calls if package.tools[c.name].kind == "write")
    read_action = format_tool_call(read_call.name, read_call.arguments)
    write_action = format_tool_call(write_call.name, write_call.arguments)
    options = {"task_id": write_task.id}

    def fresh() -> None:
        env.reset(options=options)

    read_us = _median_us(lambda: env.step(read_action), repeats, fresh)
    write_us = _median_us(lambda: env.step(write_action), repeats, fresh)

    def dirty() -> None:
        env.reset(options=options)
        env.step(write_action)

    reset_us = _median_us(lambda: env.reset(options=options), repeats, dirty)

    def played() -> None:
        env.reset(options=options)
        for call in write_task.calls:
            env.step(format_tool_call(call.name, call.arguments))

    reward_us = _median_us(env.score, repeats, played)

    calls = (write_task.calls * 10)[:10]
    actions = [format_tool_call(c.name, c.arguments) for c in calls] + ["Done."]
    start = time.perf_counter()
    for _ in range(episodes):
        env.reset(options=options)
        for action in actions:
            env.step(action)
    episodes_per_s = episodes / (time.perf_counter() - start)

    gc.collect()
    before = _rss_bytes()
    copies = [Database(package.template) for _ in range(20)]
    gc.collect()
    per_instance = (_rss_bytes() - before) / len(copies)
    db_size = copies[0].size_bytes()
    env.close()
    return {
        "env": env_id,
        "read_step_us": round(read_us, 1),
        "write_step_us": round(write_us, 1),
        "reset_us": round(reset_us, 1),
        "reward_us": round(reward_us, 1),
        "episodes_per_s_10_calls": round(episodes_per_s),
        "db_bytes": db_size,
        "memory_per_instance_bytes": round(per_instance),
        "memory_ratio": round(per_instance / db_size, 2),
        "workload": {"task": write_task.id, "read": read_call.name, "write": write_call.name},
    }
