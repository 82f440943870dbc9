"""The oracle: replays a task's ground-truth calls one per turn, then states the outputs."""

from __future__ import annotations

from typing import Any

from envfactory_gym.actions import format_tool_call
from envfactory_gym.checker import oracle_answer
from envfactory_gym.tasks import Task


class OracleAgent:
    """Scores 1.0 on a verified task: the reference an env's reward must agree with."""

    def __init__(self) -> None:
        self.pending: list = []
        self.outputs: list[str] = []

    def reset(self, task: Task) -> None:
        self.pending = list(task.calls)
        self.outputs = list(task.outputs)

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        if self.pending:
            call = self.pending.pop(0)
            return format_tool_call(call.name, call.arguments)
        return oracle_answer(self.outputs)
