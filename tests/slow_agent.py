"""An agent for the evaluation tests, loaded by its spec `tests.slow_agent:SlowOracle`."""

from __future__ import annotations

import time
from typing import Any

from envfactory_gym.agents import OracleAgent


class SlowOracle(OracleAgent):
    """The oracle, 20 ms a turn: slow enough that a run can be killed half way."""

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        time.sleep(0.02)
        return super().act(messages, tools)
