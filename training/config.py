"""`TrainConfig`: every training setting in one flat dataclass, loadable from YAML and the CLI.

`parse_config(["--config", "configs/grpo_qwen3.yaml", "--learning_rate", "2e-6"])` reads the YAML
file, then applies CLI flags on top. Every field is a flag (`--field value`; booleans also take
`--field` / `--no-field`; lists take several values). Unknown YAML keys are an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ALGOS = ("grpo", "rloo", "ppo", "sft")


@dataclass
class TrainConfig:
    """All settings of a training run (see configs/*.yaml for annotated examples)."""

    # --- run -------------------------------------------------------------------------------
    algo: str = "grpo"
    """grpo | rloo (TRL trainers), ppo (ours, multi-turn actor-critic), sft (TRL, oracle data)."""
    model: str = "Qwen/Qwen3-1.7B"
    """A Qwen3 checkpoint: hub name or local directory."""
    output_dir: str = "runs/grpo"
    seed: int = 0
    resume: str | None = None
    """`auto` (latest checkpoint in output_dir if any) or a checkpoint directory."""

    # --- environments and tasks ------------------------------------------------------------
    envs: list[str] = field(default_factory=lambda: ["envfactory/Airline-v0"])
    """Env ids, short names (`airline`) or globs (`envfactory/*`)."""
    env_weights: list[float] | None = None
    """Mixture weights, one per resolved env (default: uniform over envs)."""
    split: str = "train"
    eval_split: str = "test"
    tasks: list[str] | None = None
    """Optional task-id globs restricting the training tasks."""
    eval_tasks: list[str] | None = None
    max_turns: int = 30
    max_new_tokens: int = 512
    """Per assistant turn."""
    max_episode_tokens: int = 8192
    """Budget for one episode's completion (all turns, tool results and user replies)."""
    enable_thinking: bool = False
    """Qwen3 thinking mode (passed to the chat template)."""
    temperature: float = 1.0
    top_p: float = 1.0

    # --- reward ----------------------------------------------------------------------------
    tau: float | None = None
    """Weight of trace match vs final-state match (None: the env package's default)."""
    tau_final: float | None = None
    """If set, tau moves linearly from `tau` to `tau_final` over `tau_schedule_steps`."""
    tau_schedule_steps: int = 0
    format_penalty: float | None = None
    extra_call_penalty: float | None = None
    free_extra_calls: int | None = None

    # --- optimisation (shared) -------------------------------------------------------------
    num_generations: int = 8
    """Group size: episodes per task (GRPO/RLOO groups; PPO samples each task this often)."""
    per_device_batch_size: int = 8
    """Episodes (GRPO/RLOO/PPO) or sequences (SFT) per device per micro-step."""
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-6
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int = 100
    num_train_epochs: float = 1.0
    """SFT only, when max_steps <= 0."""

    # --- GRPO / RLOO (TRL) -----------------------------------------------------------------
    beta: float | None = None
    """KL coefficient to the reference model (None: TRL's default, 0.0 GRPO / 0.05 RLOO)."""
    epsilon: float = 0.2
    num_iterations: int = 1
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    curriculum: bool = False
    """Unlock harder tasks (more ground-truth calls and writes) as the success rate rises."""
    curriculum_threshold: float = 0.6
    curriculum_window: int = 32

    # --- PPO (ours) ------------------------------------------------------------------------
    ppo_epochs: int = 2
    ppo_minibatches: int = 2
    cliprange: float = 0.2
    cliprange_value: float = 0.2
    vf_coef: float = 0.5
    kl_coef: float = 0.05
    gamma: float = 1.0
    lam: float = 0.95
    critic_learning_rate: float | None = None
    """Defaults to 10x learning_rate."""
    shared_backbone: bool = False
    """Critic = value head on the policy's backbone (else a value model on a copy of it)."""
    whiten_advantages: bool = True

    # --- SFT (TRL) -------------------------------------------------------------------------
    sft_min_reward: float = 1.0
    """Keep oracle trajectories scoring at least this."""
    max_seq_length: int = 16384

    # --- model and system ------------------------------------------------------------------
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    bf16: bool = False
    gradient_checkpointing: bool = False
    attn_implementation: str | None = None
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_server_base_url: str | None = None

    # --- logging, evaluation, checkpoints --------------------------------------------------
    logging_steps: int = 1
    eval_steps: int = 0
    """Evaluate on `eval_split` every N steps (0: never)."""
    eval_episodes: int = 16
    save_steps: int = 50
    save_total_limit: int | None = 2
    report_to: list[str] = field(default_factory=lambda: ["none"])
    log_completions: bool = False

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.num_generations < 1 or self.per_device_batch_size < 1:
            raise ValueError("num_generations and per_device_batch_size must be >= 1")
        if self.tau_final is not None and self.tau_schedule_steps <= 0:
            raise ValueError("tau_final needs tau_schedule_steps > 0")

    def tau_at(self, step: int) -> float | None:
        """The trace weight at a training step (linear schedule); None: env default."""
        if self.tau_final is None or self.tau is None:
            return self.tau
        progress = min(1.0, step / self.tau_schedule_steps)
        return self.tau + (self.tau_final - self.tau) * progress

    def reward_overrides(self) -> dict[str, Any]:
        """Reward settings to pass to the env (only those set here)."""
        keys = ("tau", "format_penalty", "extra_call_penalty", "free_extra_calls")
        return {key: getattr(self, key) for key in keys if getattr(self, key) is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of all fields."""
        return dataclasses.asdict(self)


def _base_type(annotation: Any) -> tuple[Any, bool, bool]:
    """(element type, is_list, optional) for a field annotation."""
    hint = annotation
    optional = False
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        hint = args[0]
        origin = typing.get_origin(hint)
    if origin is list:
        return typing.get_args(hint)[0], True, optional
    return hint, False, optional


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def _converter(kind: Any, optional: bool) -> Any:
    base = _parse_bool if kind is bool else kind

    def convert(text: str) -> Any:
        if optional and text.strip().lower() in ("none", "null"):
            return None
        return base(text)

    return convert


def build_parser() -> argparse.ArgumentParser:
    """An argparse parser with one flag per TrainConfig field (defaults: unset)."""
    parser = argparse.ArgumentParser(
        description="Train Qwen3 tool-use policies on envfactory envs (GRPO, RLOO, PPO, SFT).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--config", help="YAML file with TrainConfig keys; flags override it")
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind, is_list, optional = _base_type(hints[f.name])
        flag = f"--{f.name}"
        if kind is bool and not is_list:
            parser.add_argument(
                flag,
                nargs="?",
                const=True,
                type=_converter(bool, optional),
                help=f"(default: {f.default})",
            )
            parser.add_argument(f"--no-{f.name}", dest=f.name, action="store_false")
        elif is_list:
            parser.add_argument(flag, nargs="+", type=_converter(kind, False))
        else:
            parser.add_argument(flag, type=_converter(kind, optional))
    return parser


def load_yaml(path: str | Path) -> dict[str, Any]:
    """TrainConfig keys from a YAML file; unknown keys raise."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig keys")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}")
    return data


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """YAML (`--config`) first, then CLI flags; returns a validated TrainConfig."""
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config", None)
    if config_path:
        values.update(load_yaml(config_path))
    values.update(args)
    return TrainConfig(**values)


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    import yaml

    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
