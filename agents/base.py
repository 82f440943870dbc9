"""The agent protocol the evaluation harness and training rollouts drive."""

from __future__ import annotations

from typing import Any, Protocol

from envfactory_gym.tasks import Task


class Agent(Protocol):
    def reset(self, task: Task) -> None:
        """Start a new episode on `task` (agents that are not oracles ignore it)."""
        ...

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        """Return the next raw assistant text: `<tool_call>` blocks and/or a message."""
        ...
