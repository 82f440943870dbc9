"""Adapters that plug envfactory environments into RL stacks we do not control.

One module per library, each optional: importing `envfactory_gym.integrations` imports none of
them, and each module imports its library only when a function that needs it is called.

- `envfactory_gym.integrations.trl`: TRL `GRPOTrainer(environment_factory=...)` (full JSON tool
  schemas, the env's reward as `get_reward`, one task per GRPO group).
- `envfactory_gym.integrations.openenv`: an OpenEnv (`openenv-core`) `Environment`, its FastAPI
  app and a typed `EnvClient`.
- `envfactory_gym.integrations.verifiers`: a verifiers (`verifiers.v1`) taskset and env.
- `envfactory_gym.integrations.skyrl`: a SkyRL-Gym `BaseTextEnv`, registered as `"envfactory"`.

Every adapter takes an envfactory env id (`"envfactory/Airline-v0"`) and needs one line of glue,
e.g. `env = envfactory_gym.integrations.openenv.make("envfactory/Airline-v0")`.
"""

from __future__ import annotations

__all__ = ["openenv", "skyrl", "trl", "verifiers"]
