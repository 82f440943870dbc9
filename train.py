"""Train Qwen3 tool-use policies on envfactory environments.

    accelerate launch train.py --config configs/grpo_qwen3.yaml          # GRPO (TRL)
    accelerate launch train.py --config configs/rloo_qwen3.yaml          # RLOO (TRL)
    accelerate launch train.py --config configs/ppo_qwen3.yaml           # PPO (ours, Accelerate)
    accelerate launch train.py --config configs/sft_qwen3.yaml           # SFT on oracle replays
    python train.py --config configs/smoke_cpu.yaml --algo ppo           # CPU smoke run

Every key of the YAML config is also a flag (`--learning_rate 2e-6`); flags win, and must be
spelled out in full. `python train.py --help` lists every flag with its help and default, grouped
as in `envfactory_gym.training.config.TrainConfig`; README.md#training has the recipes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from envfactory_gym.training.config import TrainConfig, parse_config, save_config


def check_distributed() -> None:
    """Fail fast when a launcher started several processes that did not form one group (on a
    CPU-only machine accelerate needs ACCELERATE_USE_CPU=1 for that), instead of training
    several unsynchronized copies."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        from accelerate import PartialState
        from accelerate.utils import parse_flag_from_env

        if PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU")).num_processes != world:
            raise SystemExit(
                f"{world} processes were launched but they did not join one process group. "
                "Without GPUs, launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu ..."
            )


def main(argv: list[str] | None = None) -> Any:
    """Parse the config, then hand it to the algorithm; returns the trainer (for tests)."""
    config: TrainConfig = parse_config(argv)
    check_distributed()
    os.makedirs(config.output_dir, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:
        save_config(config, os.path.join(config.output_dir, "train_config.yaml"))
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # rollout_func is "experimental"

    if config.algo in ("grpo", "rloo"):
        from envfactory_gym.training.trl_trainers import train_trl

        return train_trl(config)
    if config.algo == "ppo":
        from envfactory_gym.training.ppo import train_ppo

        return train_ppo(config)
    from envfactory_gym.training.sft import train_sft

    return train_sft(config)


if __name__ == "__main__":
    main(sys.argv[1:])
