"""Register every shipped env package with Gymnasium as `envfactory/<Name>-v<N>`."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

from envfactory_gym.package import builtin_envs_dir, read_config

ENTRY_POINT = "envfactory_gym.env:ToolUseEnv"
VECTOR_ENTRY_POINT = "envfactory_gym.vector:EnvPool"


def env_folders() -> list[Path]:
    root = builtin_envs_dir()
    return sorted(p for p in root.iterdir() if (p / "env.toml").is_file())


def register_envs() -> list[str]:
    """Register the builtin envs (idempotent); return their gym ids."""
    ids = []
    for folder in env_folders():
        config = read_config(folder)
        if config.gym_id not in gym.registry:
            gym.register(
                id=config.gym_id,
                entry_point=ENTRY_POINT,
                vector_entry_point=VECTOR_ENTRY_POINT,
                kwargs={"package": folder.name},
                disable_env_checker=False,
            )
        ids.append(config.gym_id)
    return ids


def package_name(gym_id: str) -> str:
    """The env package behind a registered id, e.g. 'envfactory/Airline-v0' -> 'airline'."""
    if gym_id not in gym.registry:
        known = ", ".join(sorted(i for i in gym.registry if i.startswith("envfactory/")))
        raise KeyError(f"unknown env {gym_id!r}; registered: {known}")
    return gym.registry[gym_id].kwargs["package"]
