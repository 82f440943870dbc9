"""The agent protocol, defined once beside the one episode loop (`envfactory_gym.evaluation`)
that evaluation, SFT data and `envfactory play --as user` drive."""

from __future__ import annotations

from envfactory_gym.evaluation import EpisodeAgent as Agent

__all__ = ["Agent"]
