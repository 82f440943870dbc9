"""An agent for trying `envfactory eval`: the oracle, except that with probability `p` per episode
it stops one call short of the ground truth. Its pass^k falls with k the way a real model's does
when it is right most of the time but not every time.

    envfactory eval --env 'envfactory/[A-C]*' --agent examples.agents.flaky_oracle:FlakyOracle \\
        --trials 4 --workers 2 --out report/
"""

from __future__ import annotations

import random
from typing import Any

from envfactory_gym.agents import OracleAgent
from envfactory_gym.tasks import Task


class FlakyOracle(OracleAgent):
    def __init__(self, p: float = 0.15) -> None:
        super().__init__()
        self.p = p

    def reset(self, task: Task, seed: int | None = None) -> None:
        super().reset(task)
        rng = random.Random(seed)
        if self.pending and rng.random() < self.p:
            self.pending.pop()  # forget the last call: a missing write, or an unread answer

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        return super().act(messages, tools)
