"""A random agent: calls random tools with loosely typed random arguments, then gives up.

It is the floor a reward must separate from the oracle: it should score near zero.
"""

from __future__ import annotations

import random
import string
from typing import Any

from envfactory_gym.actions import format_tool_call
from envfactory_gym.tasks import Task


class RandomAgent:
    """Random calls, then a random message. Reset with an episode seed, it plays the same
    episode in any process and any order (what parallel evaluation needs); without one, its
    generator runs on from the constructor's seed."""

    def __init__(self, seed: int = 0, max_calls: int = 4) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.max_calls = max_calls
        self.calls_made = 0

    def reset(self, task: Task, seed: int | None = None) -> None:
        self.calls_made = 0
        if seed is not None:
            self.rng = random.Random(f"{self.seed}:{seed}")

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        if self.calls_made >= self.max_calls or not tools or self.rng.random() < 0.2:
            return " ".join(self._word() for _ in range(self.rng.randint(3, 12))) + "."
        self.calls_made += 1
        function = self.rng.choice(tools)["function"]
        properties = function["parameters"].get("properties", {})
        arguments = {name: self._value(spec) for name, spec in properties.items()}
        return format_tool_call(function["name"], arguments)

    def _word(self) -> str:
        return "".join(self.rng.choices(string.ascii_lowercase, k=self.rng.randint(2, 8)))

    def _value(self, spec: dict[str, Any]) -> Any:
        kind = spec.get("type")
        if "enum" in spec:
            return self.rng.choice(spec["enum"])
        if kind == "integer":
            return self.rng.randint(0, 500)
        if kind == "number":
            return round(self.rng.uniform(0, 500), 2)
        if kind == "array":
            return [self._value(spec.get("items", {})) for _ in range(self.rng.randint(0, 2))]
        if kind == "object":
            return {k: self._value(v) for k, v in spec.get("properties", {}).items()}
        return self._word()
