"""Pieces every algorithm shares: tokenizer and LoRA setup, metrics log, resume, rank summaries."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from envfactory_gym.training.config import TrainConfig
from envfactory_gym.training.rollout import Episode, RolloutRunner


def load_tokenizer(model: str) -> Any:
    """The model's tokenizer, left-padded (generation) with a pad token."""
    from transformers import AutoTokenizer

    from envfactory_gym.training.tiny_model import qwen3_chat_template

    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.chat_template != qwen3_chat_template():
        import warnings

        warnings.warn(
            "the tokenizer's chat template differs from trl/chat_templates/qwen3.jinja; TRL will "
            "not recognize it (SFT assistant-only masking needs the recognized Qwen3 template)",
            stacklevel=2,
        )
    return tokenizer


def chat_template_kwargs(config: TrainConfig) -> dict[str, Any]:
    """Extra chat-template arguments (Qwen3's thinking switch)."""
    return {"enable_thinking": config.enable_thinking}


def make_runner(config: TrainConfig, tokenizer: Any) -> RolloutRunner:
    """The rollout runner for this config's episode limits and reward settings, its envs in this
    process or (`env_workers: ray`) on Ray actors."""
    runner = RolloutRunner(
        tokenizer,
        max_turns=config.max_turns,
        max_new_tokens=config.max_new_tokens,
        max_episode_tokens=config.max_episode_tokens,
        reward_overrides=config.reward_overrides(),
        chat_template_kwargs=chat_template_kwargs(config),
    )
    if config.env_workers == "ray":
        from envfactory_gym.distributed import RayEnvSlots

        runner.envs = RayEnvSlots(
            runner.make_kwargs(),
            config.ray_env_actors,
            address=config.ray_address,
            sharers=int(os.environ.get("WORLD_SIZE", "1")),  # each training process has its own
        )
    return runner


def lora_config(config: TrainConfig, task_type: str = "CAUSAL_LM") -> Any:
    """A peft LoraConfig when `config.lora`, else None."""
    if not config.lora:
        return None
    from peft import LoraConfig

    targets = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else list(targets),
        task_type=task_type,
    )


def resume_checkpoint(config: TrainConfig) -> str | None:
    """The checkpoint to resume from: `resume: auto` picks the latest in output_dir."""
    if config.resume in (None, "", "none", "false"):
        return None
    if config.resume == "auto":
        from transformers.trainer_utils import get_last_checkpoint

        path = Path(config.output_dir)
        return get_last_checkpoint(str(path)) if path.is_dir() else None
    if not Path(config.resume).is_dir():
        raise FileNotFoundError(f"resume checkpoint {config.resume} does not exist")
    return config.resume


class MetricsLog:
    """Appends one JSON line per logging step to `<output_dir>/metrics.jsonl` (main process)."""

    def __init__(self, output_dir: str | Path, enabled: bool = True) -> None:
        self.path = Path(output_dir) / "metrics.jsonl"
        self.enabled = enabled
        if enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, step: int, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"step": step, "time": time.time(), **metrics}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


def metrics_callback(output_dir: str | Path) -> Any:
    """A transformers TrainerCallback that mirrors TRL's logs into metrics.jsonl."""
    from transformers import TrainerCallback

    class _Callback(TrainerCallback):
        def __init__(self) -> None:
            self.log = MetricsLog(output_dir, enabled=False)

        def on_train_begin(self, args, state, control, **kwargs):
            self.log = MetricsLog(output_dir, enabled=state.is_world_process_zero)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                self.log.write(state.global_step, dict(logs))

    return _Callback()


def lockstep_fn(accelerator: Any) -> Any:
    """For several processes: all-reduce max of the local batch width, so that every process
    generates equally often (see RolloutRunner.run). None for a single process."""
    if accelerator.num_processes == 1:
        return None
    import torch

    def width(local: int) -> int:
        value = torch.tensor([local], device=accelerator.device)
        return int(accelerator.reduce(value, reduction="max").item())

    return width


class EpisodeLog:
    """Appends one JSON line per finished episode to `<output_dir>/rollouts/rank<R>.jsonl`."""

    def __init__(self, output_dir: str | Path, rank: int) -> None:
        self.path = Path(output_dir) / "rollouts" / f"rank{rank}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, episodes: list[Episode], step: int, mode: str) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            for episode in episodes:
                record = {"step": step, "mode": mode, **episode.record()}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def parameter_digest(model: Any) -> str:
    """SHA-256 over every parameter (name, dtype, values): equal digests, equal weights."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        data = tensor.detach().to("cpu")
        if data.dtype == torch.bfloat16:
            data = data.float()
        digest.update(str(data.dtype).encode())
        digest.update(data.contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_rank_summary(output_dir: str | Path, rank: int, summary: dict[str, Any]) -> Path:
    """`<output_dir>/ranks/rank<R>.json`: what this process did (steps, episodes, weights)."""
    path = Path(output_dir) / "ranks" / f"rank{rank}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2, default=float), encoding="utf-8")
    return path
