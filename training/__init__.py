"""Training: GRPO and RLOO (TRL), PPO (ours, on Accelerate) and SFT on the envfactory envs.

Entry point: `accelerate launch train.py --config configs/grpo_qwen3.yaml`. This package keeps
its top level light; torch, transformers and trl load only in the submodules that need them.
"""

__all__ = [
    "common",
    "config",
    "data",
    "generation",
    "ppo",
    "rollout",
    "sft",
    "tiny_model",
    "trl_trainers",
]
