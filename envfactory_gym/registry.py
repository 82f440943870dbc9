"""Register every shipped env package with Gymnasium as `envfactory/<Name>-v<N>`."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym

from envfactory_gym.package import builtin_envs_dir, read_config

ENTRY_POINT = "envfactory_gym.env:ToolUseEnv"
VECTOR_ENTRY_POINT = "envfactory_gym.vector:EnvPool"


def env_folders() -> list[Path]:
    """The shipped packages: hand-written ones, and generated ones (with spec.yaml) that passed
    verification (`envfactory verify` left verified.json)."""
    return sorted(p for p in builtin_envs_dir().iterdir() if registrable(p))


def registrable(folder: Path) -> bool:
    """An env package folder (not a generator's staging folder, '.name.xxxx'), hand-written or
    generated and verified."""
    return (
        folder.name.isidentifier()
        and (folder / "env.toml").is_file()
        and (not (folder / "spec.yaml").is_file() or (folder / "verified.json").is_file())
    )


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
