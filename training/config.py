"""`TrainConfig`: every training setting in one flat dataclass, loadable from YAML and the CLI.

`parse_config(["--config", "configs/grpo_qwen3.yaml", "--learning_rate", "2e-6"])` reads the YAML
file, then applies CLI flags on top. Every field is a flag (`--field value`; booleans also take
`--field` / `--no-field`; lists take several values; `none` unsets an optional field), with its
help text in the field's `metadata["help"]` (shown by `train.py --help`, grouped by section).
Flags must be spelled out in full; unknown flags and unknown YAML keys are errors that name the
closest valid ones.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envfactory_gym.specs import parse_bool

ALGOS = ("grpo", "rloo", "ppo", "sft")
ENV_WORKERS = ("local", "ray")


@dataclass
class TrainConfig:
    """All settings of a training run (see configs/*.yaml for annotated examples)."""

    # --- run -------------------------------------------------------------------------------
    algo: str = field(
        default="grpo",
        metadata={
            "help": "grpo | rloo (TRL trainers), ppo (ours, multi-turn actor-critic), "
            "sft (TRL, on oracle replays)."
        },
    )
    model: str = field(
        default="Qwen/Qwen3-1.7B",
        metadata={"help": "The Qwen3 checkpoint to start from: hub name or local directory."},
    )
    output_dir: str = field(
        default="runs/grpo",
        metadata={
            "help": "Run directory: checkpoints, final model, train_config.yaml, metrics.jsonl, "
            "rollouts/ and ranks/."
        },
    )
    seed: int = field(
        default=0, metadata={"help": "Random seed (task sampling, generation, initialisation)."}
    )
    resume: str | None = field(
        default=None,
        metadata={
            "help": "`auto` (the latest checkpoint in output_dir, if any) or a checkpoint "
            "directory; none starts from `model`."
        },
    )

    # --- environments and tasks ------------------------------------------------------------
    envs: list[str] = field(
        default_factory=lambda: ["envfactory/Airline-v0"],
        metadata={"help": "Env ids, short names (`airline`) or globs (`envfactory/*`)."},
    )
    env_weights: list[float] | None = field(
        default=None,
        metadata={
            "help": "Task-sampling weights, one per resolved env (GRPO/RLOO/PPO); "
            "none: uniform over the envs."
        },
    )
    split: str = field(
        default="train", metadata={"help": "Task split to train on: train, test or all."}
    )
    eval_split: str = field(
        default="test", metadata={"help": "Task split to evaluate on (see eval_steps)."}
    )
    tasks: list[str] | None = field(
        default=None,
        metadata={"help": "Task-id globs restricting the training tasks (none: the whole split)."},
    )
    eval_tasks: list[str] | None = field(
        default=None,
        metadata={"help": "Task-id globs restricting the evaluation tasks (none: all of them)."},
    )
    max_turns: int = field(
        default=30,
        metadata={
            "help": "Turn limit of an episode (the env truncates it there); SFT replays too."
        },
    )
    max_new_tokens: int = field(
        default=512, metadata={"help": "Tokens the policy may generate per assistant turn."}
    )
    max_episode_tokens: int = field(
        default=8192,
        metadata={
            "help": "Budget for one episode's completion (all turns, tool results and user "
            "replies)."
        },
    )
    enable_thinking: bool = field(
        default=False, metadata={"help": "Qwen3 thinking mode (passed to the chat template)."}
    )
    temperature: float = field(
        default=1.0,
        metadata={"help": "Sampling temperature of rollouts (log-probs use the same one)."},
    )
    top_p: float = field(default=1.0, metadata={"help": "Nucleus-sampling top_p of rollouts."})
    env_workers: str = field(
        default="local",
        metadata={
            "help": "Where rollout envs step: local (in each training process) or ray (on CPU "
            "actors of a Ray cluster, a batch of actions per actor per turn; the `ray` extra)."
        },
    )
    ray_address: str | None = field(
        default=None,
        metadata={
            "help": "With env_workers ray: the cluster (auto, HOST:PORT or ray://HOST:PORT); "
            "none: RAY_ADDRESS, else a cluster `ray start` runs here, else a new local one."
        },
    )
    ray_env_actors: int = field(
        default=0,
        metadata={
            "help": "With env_workers ray: env actors per training process, one CPU each "
            "(0: the cluster's CPUs split evenly between the training processes)."
        },
    )

    # --- reward ----------------------------------------------------------------------------
    tau: float | None = field(
        default=None,
        metadata={
            "help": "Weight of trace match vs final-state match (none: the env package's default)."
        },
    )
    tau_final: float | None = field(
        default=None,
        metadata={
            "help": "If set, tau moves linearly from `tau` to `tau_final` over "
            "`tau_schedule_steps`."
        },
    )
    tau_schedule_steps: int = field(
        default=0,
        metadata={"help": "Training steps over which tau reaches tau_final (> 0 with tau_final)."},
    )
    format_penalty: float | None = field(
        default=None,
        metadata={"help": "Penalty per malformed or invalid call (none: the env's default)."},
    )
    extra_call_penalty: float | None = field(
        default=None,
        metadata={"help": "Penalty per call past the free allowance (none: the env's default)."},
    )
    free_extra_calls: int | None = field(
        default=None,
        metadata={
            "help": "Calls beyond the ground truth that cost nothing (none: the env's default)."
        },
    )

    # --- optimisation (shared) -------------------------------------------------------------
    num_generations: int = field(
        default=8,
        metadata={
            "help": "Group size: episodes per task (GRPO/RLOO groups; PPO samples each task "
            "this often)."
        },
    )
    per_device_batch_size: int = field(
        default=8,
        metadata={"help": "Episodes (GRPO/RLOO/PPO) or sequences (SFT) per device per micro-step."},
    )
    gradient_accumulation_steps: int = field(
        default=1,
        metadata={"help": "Micro-steps per optimizer step (GRPO/RLOO/SFT; PPO ignores it)."},
    )
    learning_rate: float = field(
        default=1e-6, metadata={"help": "Peak learning rate (PPO: of the policy)."}
    )
    lr_scheduler_type: str = field(
        default="constant",
        metadata={"help": "transformers scheduler name: constant, linear, cosine, ..."},
    )
    warmup_steps: int = field(
        default=0,
        metadata={"help": "Learning-rate warmup steps (PPO: counted in optimizer updates)."},
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    max_grad_norm: float = field(
        default=1.0, metadata={"help": "Gradient-norm clipping threshold (PPO: 0 disables it)."}
    )
    max_steps: int = field(
        default=100,
        metadata={
            "help": "Training steps (PPO: rollout + update iterations); SFT with max_steps <= 0 "
            "trains num_train_epochs instead."
        },
    )
    num_train_epochs: float = field(
        default=1.0, metadata={"help": "SFT only, when max_steps <= 0: epochs over the data."}
    )

    # --- GRPO / RLOO (TRL) -----------------------------------------------------------------
    beta: float | None = field(
        default=None,
        metadata={
            "help": "KL coefficient to the reference model (none: TRL's default, 0.0 GRPO / "
            "0.05 RLOO)."
        },
    )
    epsilon: float = field(
        default=0.2, metadata={"help": "Clipping range of the policy probability ratio."}
    )
    num_iterations: int = field(
        default=1, metadata={"help": "Optimisation passes over each generated batch (TRL's mu)."}
    )
    loss_type: str = field(
        default="dapo",
        metadata={"help": "GRPO loss formulation (TRL loss_type: dapo, grpo, dr_grpo, bnpo, ...)."},
    )
    scale_rewards: str = field(
        default="group",
        metadata={"help": "GRPO advantage scaling by reward std: group, batch or none."},
    )
    curriculum: bool = field(
        default=False,
        metadata={
            "help": "Unlock harder tasks (more ground-truth calls and writes) as the success "
            "rate rises (GRPO/RLOO/PPO)."
        },
    )
    curriculum_threshold: float = field(
        default=0.6,
        metadata={"help": "Success rate at the current level that unlocks the next level."},
    )
    curriculum_window: int = field(
        default=32, metadata={"help": "Recent episodes the curriculum's success rate is over."}
    )

    # --- PPO (ours) ------------------------------------------------------------------------
    ppo_epochs: int = field(default=2, metadata={"help": "Passes over each step's rollout batch."})
    ppo_minibatches: int = field(
        default=2,
        metadata={"help": "Minibatches per PPO epoch (must divide per_device_batch_size)."},
    )
    cliprange: float = field(default=0.2, metadata={"help": "Policy-ratio clipping range."})
    cliprange_value: float = field(
        default=0.2, metadata={"help": "Value clipping range around the old values."}
    )
    vf_coef: float = field(default=0.5, metadata={"help": "Weight of the value loss."})
    kl_coef: float = field(
        default=0.05,
        metadata={"help": "Per-token KL penalty to the reference policy, added to the reward."},
    )
    gamma: float = field(default=1.0, metadata={"help": "GAE discount over policy tokens."})
    lam: float = field(default=0.95, metadata={"help": "GAE lambda."})
    critic_learning_rate: float | None = field(
        default=None, metadata={"help": "Critic learning rate (none: 10x learning_rate)."}
    )
    shared_backbone: bool = field(
        default=False,
        metadata={
            "help": "Critic = value head on the policy's backbone (else a value model on a "
            "copy of it)."
        },
    )
    whiten_advantages: bool = field(
        default=True,
        metadata={"help": "Normalise advantages to zero mean, unit variance over policy tokens."},
    )

    # --- SFT (TRL) -------------------------------------------------------------------------
    sft_min_reward: float = field(
        default=1.0, metadata={"help": "Keep oracle trajectories scoring at least this."}
    )
    max_seq_length: int = field(
        default=16384,
        metadata={"help": "Longest tokenized conversation; longer ones are truncated."},
    )

    # --- model and system ------------------------------------------------------------------
    lora: bool = field(
        default=False, metadata={"help": "Train a LoRA adapter instead of all the weights."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules LoRA adapts (all-linear: every linear layer but the LM head)."},
    )
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision."})
    gradient_checkpointing: bool = field(
        default=False,
        metadata={"help": "Recompute activations in the backward pass to save memory."},
    )
    attn_implementation: str | None = field(
        default=None,
        metadata={
            "help": "transformers attention: sdpa, eager, flash_attention_2, ... "
            "(none: transformers' default)."
        },
    )
    use_vllm: bool = field(
        default=False, metadata={"help": "Generate GRPO/RLOO rollouts with vLLM."}
    )
    vllm_mode: str = field(
        default="colocate",
        metadata={
            "help": "colocate (vLLM inside the training processes) or server (`trl vllm-serve`)."
        },
    )
    vllm_gpu_memory_utilization: float = field(
        default=0.3, metadata={"help": "Fraction of GPU memory vLLM may use in colocate mode."}
    )
    vllm_server_base_url: str | None = field(
        default=None,
        metadata={"help": "URL of the vLLM server in server mode (none: TRL's default)."},
    )

    # --- logging, evaluation, checkpoints --------------------------------------------------
    logging_steps: int = field(
        default=1, metadata={"help": "Log metrics (to metrics.jsonl) every N steps."}
    )
    eval_steps: int = field(
        default=0, metadata={"help": "Evaluate on `eval_split` every N steps (0: never)."}
    )
    eval_episodes: int = field(
        default=16, metadata={"help": "Evaluate on the first N tasks of eval_split/eval_tasks."}
    )
    save_steps: int = field(
        default=50,
        metadata={"help": "Save a checkpoint every N steps (0: only the final model)."},
    )
    save_total_limit: int | None = field(
        default=2, metadata={"help": "Checkpoints kept in output_dir (none: all)."}
    )
    report_to: list[str] = field(
        default_factory=lambda: ["none"],
        metadata={"help": "Experiment trackers: none, wandb, tensorboard, ..."},
    )
    log_completions: bool = field(
        default=False,
        metadata={"help": "GRPO/RLOO: print sample completions at each logging step."},
    )

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.num_generations < 1 or self.per_device_batch_size < 1:
            raise ValueError("num_generations and per_device_batch_size must be >= 1")
        if self.tau_final is not None and self.tau_schedule_steps <= 0:
            raise ValueError("tau_final needs tau_schedule_steps > 0")
        if self.env_workers not in ENV_WORKERS:
            raise ValueError(f"env_workers must be one of {ENV_WORKERS}, got {self.env_workers!r}")
        if self.ray_env_actors < 0:
            raise ValueError("ray_env_actors must be >= 0")

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


# The `--help` sections, keyed by each section's first field (the `# ---` markers above): a
# field belongs to the section of the nearest marker before it.
SECTIONS = {
    "algo": "run",
    "envs": "environments and tasks",
    "tau": "reward",
    "num_generations": "optimisation (shared)",
    "beta": "GRPO / RLOO (TRL)",
    "ppo_epochs": "PPO (ours)",
    "sft_min_reward": "SFT (TRL)",
    "lora": "model and system",
    "logging_steps": "logging, evaluation, checkpoints",
}

EPILOG = """\
Flags must be spelled out in full. Values: `--FIELD VALUE`; booleans `--FIELD`, `--no-FIELD` or
`--FIELD true|false`; lists take several values (`--tasks 'a-*' 'b-*'`); `none` or `null` unsets
an optional field. `--config FILE.yaml` reads TrainConfig keys first; flags override them.
"""


def field_sections() -> dict[str, str]:
    """Field name -> its `--help` section title, in field order."""
    out, title = {}, None
    for f in dataclasses.fields(TrainConfig):
        title = SECTIONS.get(f.name, title)
        if title is None:
            raise ValueError(f"field {f.name!r} comes before the first section")
        out[f.name] = title
    return out


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
    try:
        return parse_bool(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a boolean: {text!r}") from None


def _converter(kind: Any, optional: bool) -> Any:
    base = _parse_bool if kind is bool else kind

    def convert(text: str) -> Any:
        if optional and text.strip().lower() in ("none", "null"):
            return None
        return base(text)

    convert.__name__ = getattr(base, "__name__", "value")  # argparse names it in its errors
    return convert


def _default_text(f: dataclasses.Field) -> str:
    """A field's default as one would type it on the command line."""
    value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def close_matches(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """The candidates `name` most likely meant: those it abbreviates (a prefix, or the initials
    of their words: `lr` -> `learning_rate`), then near-spellings (difflib)."""
    candidates = list(dict.fromkeys(candidates))
    if not name:
        return []

    def initials(text: str) -> str:
        return "".join(word[0] for word in text.replace("-", "_").split("_") if word)

    abbreviated = [c for c in candidates if initials(c) == name or c.startswith(name)]
    similar = difflib.get_close_matches(name, candidates, n=limit, cutoff=0.7)
    return list(dict.fromkeys(abbreviated + similar))[:limit]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class ConfigArgumentParser(argparse.ArgumentParser):
    """argparse (build it with allow_abbrev=False) whose unknown-flag error names close flags."""

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self.unknown_message(extras))
        return namespace

    def unknown_message(self, extras: Sequence[str]) -> str:
        """`unknown option --lr; did you mean --learning_rate, --lr_scheduler_type?`"""
        flags = [
            arg.split("=", 1)[0]
            for arg in extras
            if arg.startswith("-") and arg.strip("-") and not _is_number(arg)
        ]
        if not flags:
            return f"unrecognized arguments: {' '.join(extras)}"
        known = [s[2:] for s in self._option_string_actions if s.startswith("--")]
        messages = []
        for flag in dict.fromkeys(flags):
            guesses = close_matches(flag.lstrip("-"), known)
            hint = f"; did you mean {', '.join('--' + g for g in guesses)}?" if guesses else ""
            messages.append(f"unknown option {flag}{hint}")
        return "; ".join(messages)


def build_parser() -> ConfigArgumentParser:
    """An argparse parser with one flag per TrainConfig field (defaults: unset, so that only the
    flags given override the YAML), grouped by section, each with its help and default."""
    parser = ConfigArgumentParser(
        prog="train.py",
        usage="%(prog)s [-h] [--config FILE] [--FIELD VALUE ...]",
        description="Train Qwen3 tool-use policies on envfactory envs (GRPO, RLOO, PPO, SFT).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,
    )
    hints = typing.get_type_hints(TrainConfig)
    sections = field_sections()
    groups = {title: parser.add_argument_group(title) for title in sections.values()}
    groups[sections["algo"]].add_argument(
        "--config", metavar="FILE", help="YAML file of TrainConfig keys, read first; flags win."
    )
    for f in dataclasses.fields(TrainConfig):
        group = groups[sections[f.name]]
        kind, is_list, optional = _base_type(hints[f.name])
        flag = f"--{f.name}"
        text = f"{f.metadata.get('help', '')} (default: {_default_text(f)})".replace("%", "%%")
        metavar = getattr(kind, "__name__", "value").upper()
        if kind is bool and not is_list:
            group.add_argument(
                flag,
                nargs="?",
                const=True,
                metavar="BOOL",
                type=_converter(bool, optional),
                help=text,
            )
            group.add_argument(
                f"--no-{f.name}", dest=f.name, action="store_false", help=argparse.SUPPRESS
            )
        elif is_list:
            group.add_argument(
                flag, nargs="+", metavar=metavar, type=_converter(kind, False), help=text
            )
        elif f.name == "algo":
            group.add_argument(flag, choices=ALGOS, help=text)
        else:
            group.add_argument(flag, metavar=metavar, type=_converter(kind, optional), help=text)
    return parser


def unknown_keys_message(keys: Sequence[str]) -> str:
    """`unknown key 'learning_rat' (did you mean learning_rate?)`, one clause per key."""
    known = [f.name for f in dataclasses.fields(TrainConfig)]
    parts = []
    for key in keys:
        guesses = close_matches(str(key), known)
        hint = f" (did you mean {', '.join(guesses)}?)" if guesses else ""
        parts.append(f"unknown key {key!r}{hint}")
    return "; ".join(parts)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """TrainConfig keys from a YAML file; unknown keys raise a ValueError naming close matches."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of TrainConfig keys")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted((k for k in data if k not in known), key=str)
    if unknown:
        raise ValueError(f"{path}: {unknown_keys_message(unknown)}")
    return data


def parse_config(argv: list[str] | None = None) -> TrainConfig:
    """YAML (`--config`) first, then CLI flags; returns a validated TrainConfig. Command-line and
    config-file mistakes end in `parser.error` (message, exit status 2)."""
    import yaml

    parser = build_parser()
    args = vars(parser.parse_args(argv))
    values: dict[str, Any] = {}
    config_path = args.pop("config", None)
    try:
        if config_path:
            values.update(load_yaml(config_path))
        values.update(args)
        return TrainConfig(**values)
    except (OSError, ValueError, yaml.YAMLError) as error:
        parser.error(str(error))


def save_config(config: TrainConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (what a run actually used)."""
    import yaml

    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
