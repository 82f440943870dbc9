"""envfactory-gym: executable, stateful tool-use environments for training LLM agents.

Importing the package registers every shipped environment with Gymnasium:

    import gymnasium as gym, envfactory_gym
    env = gym.make("envfactory/Airline-v0")
"""

from envfactory_gym.database import Database
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.registry import register_envs
from envfactory_gym.reward import RewardBreakdown, RewardConfig
from envfactory_gym.tasks import Task, ToolCall
from envfactory_gym.tools import ToolError, tool

__version__ = "0.1.0"

__all__ = [
    "Database",
    "EnvPackage",
    "RewardBreakdown",
    "RewardConfig",
    "Task",
    "ToolCall",
    "ToolError",
    "ToolUseEnv",
    "load_package",
    "register_envs",
    "tool",
]

ENV_IDS = register_envs()
