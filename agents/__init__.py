"""Policies that act in the envs. Each has `reset(task)` and `act(messages, tools) -> str`."""

import importlib

from envfactory_gym.agents.base import Agent
from envfactory_gym.agents.oracle import OracleAgent
from envfactory_gym.agents.random_agent import RandomAgent

AGENTS = {"oracle": OracleAgent, "random": RandomAgent}

__all__ = ["AGENTS", "Agent", "OracleAgent", "RandomAgent", "make_agent"]


def make_agent(spec: str, **kwargs) -> Agent:
    """Build an agent from its spec: 'oracle', 'random', or 'package.module:Class' (a class of
    your own, built with no arguments or `kwargs`, that has `reset(task)` and `act`)."""
    if spec in AGENTS:
        return AGENTS[spec](**kwargs)
    if ":" in spec and not spec.startswith(("hf:", "openai:")):
        module_name, _, class_name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load agent {spec!r}: {exc}") from None
        agent = cls(**kwargs) if kwargs else cls()
        missing = [m for m in ("reset", "act") if not callable(getattr(agent, m, None))]
        if missing:
            raise ValueError(f"agent {spec!r} has no {' or '.join(missing)} method")
        return agent
    raise ValueError(
        f"unknown agent {spec!r}; choose from {', '.join(AGENTS)}, or give package.module:Class"
    )
