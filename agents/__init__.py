"""Policies that act in the envs. Each has `reset(task)` and `act(messages, tools) -> str`."""

from envfactory_gym.agents.base import Agent
from envfactory_gym.agents.oracle import OracleAgent
from envfactory_gym.agents.random_agent import RandomAgent

AGENTS = {"oracle": OracleAgent, "random": RandomAgent}

__all__ = ["AGENTS", "Agent", "OracleAgent", "RandomAgent", "make_agent"]


def make_agent(name: str, **kwargs) -> Agent:
    """Build an agent by name ('oracle', 'random')."""
    try:
        return AGENTS[name](**kwargs)
    except KeyError:
        raise ValueError(f"unknown agent {name!r}; choose from {', '.join(AGENTS)}") from None
