"""GRPO and RLOO through TRL's own trainers, with multi-turn env rollouts.

GRPO: TRL's `GRPOTrainer(rollout_func=...)` hook. Our rollout function plays whole episodes
(training/rollout.py) and returns `env_mask` (1 on the policy's own tokens), which TRL multiplies
into its loss mask; the env's episode reward reaches TRL through the `env_reward` reward function.

RLOO: TRL 1.16's `RLOOTrainer` has no `rollout_func`/`environment_factory` hook, so
`EnvRLOOTrainer` adds the same `rollout_func` contract in a thin subclass: it replaces the
single-turn generation and zeroes the log-probabilities of env tokens, so TRL's RLOO loss and
KL see only the policy's tokens. The advantage estimator and the loss stay TRL's.

Both subclasses replace the train sampler with `TaskSampler` (env mixture weights, optional
curriculum); every member of a group is the same task from the same initial state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from trl import GRPOTrainer, RLOOTrainer
from trl.trainer.utils import pad

from envfactory_gym.training.common import (
    EpisodeLog,
    chat_template_kwargs,
    load_tokenizer,
    lockstep_fn,
    lora_config,
    make_runner,
    metrics_callback,
    parameter_digest,
    resume_checkpoint,
    write_rank_summary,
)
from envfactory_gym.training.config import TrainConfig
from envfactory_gym.training.data import Curriculum, PromptIndex, TaskRef, TaskSampler
from envfactory_gym.training.rollout import Episode, GenerateFn, RolloutRunner, summarize


def trainer_generate_fn(trainer: GRPOTrainer | RLOOTrainer) -> GenerateFn:
    """One assistant turn for a batch of token-id prompts, through the trainer's own backend
    (transformers generate, or vLLM colocate/server with weight sync), capped at its
    `max_completion_length` (our per-turn `max_new_tokens`)."""

    def generate(prompt_ids: list[list[int]]) -> tuple[list[list[int]], list[list[float]] | None]:
        if isinstance(trainer, GRPOTrainer):  # (vLLM weights are synced inside, per step)
            ids, logprobs = trainer._generate_single_turn(prompt_ids, None, {}, 1)
            return [list(x) for x in ids], logprobs
        return [list(x) for x in trainer._generate_single_turn(prompt_ids, None, {})], None

    return generate


def make_rollout_func(
    runner: RolloutRunner,
    index: PromptIndex,
    tau_at: Callable[[int], float | None],
    curriculum: Curriculum | None = None,
    log_dir: str | Path | None = None,
) -> Callable[[list[Any], Any], dict[str, Any]]:
    """A TRL `rollout_func`: plays each prompt's task to the end, returns ids, env mask, rewards."""
    logs: dict[int, EpisodeLog] = {}

    def rollout_func(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        accelerator = trainer.accelerator
        requests = [index.lookup(prompt) for prompt in prompts]
        lockstep = lockstep_fn(accelerator)
        step = trainer.state.global_step
        episodes = runner.run(
            requests, trainer_generate_fn(trainer), tau=tau_at(step), lockstep=lockstep
        )
        mode = "train" if trainer.model.training else "eval"
        if curriculum is not None and mode == "train":
            difficulty = {(t.env_id, t.task_id): t.difficulty for t in trainer.task_refs}
            local = [(difficulty[(e.env_id, e.task_id)], e.success) for e in episodes]
            from accelerate.utils import gather_object

            curriculum.update(gather_object(local))
        if log_dir is not None:
            rank = accelerator.process_index
            logs.setdefault(rank, EpisodeLog(log_dir, rank)).write(episodes, step, mode)
        has_logprobs = all(e.logprobs is not None for e in episodes)
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.logprobs for e in episodes] if has_logprobs else None,
            "env_mask": [e.mask for e in episodes],
            "env_reward": [e.reward for e in episodes],
            "episode": episodes,
        }

    return rollout_func


def env_reward(
    prompts: list[Any],
    completions: list[Any],
    env_reward: list[float] | None = None,
    episode: list[Episode] | None = None,
    log_metric: Callable[[str, float], None] | None = None,
    **kwargs: Any,
) -> list[float]:
    """The env's episode reward (computed from the database by the env), breakdown logged."""
    if env_reward is None or episode is None:
        raise ValueError("env_reward needs the rollout_func's `env_reward` and `episode` fields")
    if log_metric is not None:
        for name, value in summarize(episode).items():
            log_metric(name, value)
    return [float(r) for r in env_reward]


class _EnvSamplerMixin:
    """Replaces TRL's RepeatSampler with TaskSampler (mixture weights, curriculum)."""

    task_refs: list[TaskRef]
    env_weights: dict[str, float]
    curriculum: Curriculum | None

    def _get_train_sampler(self, dataset: Any = None) -> TaskSampler:
        return TaskSampler(
            self.task_refs,
            self.env_weights,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            seed=self.args.seed,
            curriculum=self.curriculum,
        )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self.curriculum is not None and self.model.training:
            logs = {**logs, "curriculum/level": float(self.curriculum.level)}
        super().log(logs, start_time)


class EnvGRPOTrainer(_EnvSamplerMixin, GRPOTrainer):
    """TRL's GRPOTrainer on env tasks: `rollout_func` rollouts and our task sampler."""

    def __init__(
        self,
        *args: Any,
        task_refs: list[TaskRef],
        env_weights: dict[str, float],
        curriculum: Curriculum | None = None,
        **kwargs: Any,
    ) -> None:
        self.task_refs, self.env_weights, self.curriculum = task_refs, env_weights, curriculum
        super().__init__(*args, **kwargs)


class EnvRLOOTrainer(_EnvSamplerMixin, RLOOTrainer):
    """TRL's RLOOTrainer with GRPOTrainer's `rollout_func` contract added (multi-turn episodes
    and an `env_mask` that removes env tokens from the log-probabilities, loss and KL)."""

    def __init__(
        self,
        *args: Any,
        rollout_func: Callable[[list[Any], Any], dict[str, Any]],
        task_refs: list[TaskRef],
        env_weights: dict[str, float],
        curriculum: Curriculum | None = None,
        **kwargs: Any,
    ) -> None:
        self.task_refs, self.env_weights, self.curriculum = task_refs, env_weights, curriculum
        self.rollout_func = rollout_func
        self._env_mask: torch.Tensor | None = None
        self._rollout_extra: dict[str, list[Any]] = {}
        super().__init__(*args, **kwargs)

    def _generate(self, prompts: list[Any]) -> tuple[list, list, list]:
        output = self.rollout_func(prompts, self)
        prompt_ids, completion_ids = output["prompt_ids"], output["completion_ids"]
        masks = [torch.tensor(m, dtype=torch.long) for m in output["env_mask"]]
        self._env_mask = pad(
            masks, padding_value=0, padding_side="right", pad_to_multiple_of=self.pad_to_multiple_of
        ).to(self.accelerator.device)
        required = ("prompt_ids", "completion_ids", "logprobs", "env_mask")
        self._rollout_extra = {k: v for k, v in output.items() if k not in required}
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        completions = [[{"role": "assistant", "content": text}] for text in texts]

        mode = "train" if self.model.training else "eval"
        device = self.accelerator.device
        lengths = self.accelerator.gather(
            torch.tensor(
                [[len(p), int(m.sum())] for p, m in zip(prompt_ids, masks, strict=True)],
                device=device,
            )
        )
        if mode == "train":
            self.state.num_input_tokens_seen += int(lengths.sum().item())
        self._metrics[mode]["num_tokens"] = [self.state.num_input_tokens_seen]
        self._metrics[mode]["completions/mean_length"].append(lengths[:, 1].float().mean().item())
        return prompt_ids, completion_ids, completions

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        for i, row in enumerate(inputs):
            for key, values in self._rollout_extra.items():
                row[key] = values[i]
        return super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            output = super()._generate_and_score_completions(inputs)
            output["env_mask"] = self._env_mask
        finally:
            self._env_mask = None
        return output

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        self._env_mask = inputs["env_mask"]
        try:
            return super()._compute_loss(model, inputs)
        finally:
            self._env_mask = None

    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):
        logps, entropies, aux_loss = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        mask = self._env_mask
        if mask is not None and mask.shape == logps.shape:
            logps = logps * mask
            entropies = None if entropies is None else entropies * mask
        elif mask is not None:
            raise RuntimeError(f"env mask {tuple(mask.shape)} != logps {tuple(logps.shape)}")
        return logps, entropies, aux_loss


def _trl_args(config: TrainConfig, eval_enabled: bool) -> dict[str, Any]:
    """Settings GRPOConfig and RLOOConfig share."""
    model_init_kwargs = {}
    if config.attn_implementation:
        model_init_kwargs["attn_implementation"] = config.attn_implementation
    args: dict[str, Any] = {
        "output_dir": config.output_dir,
        "seed": config.seed,
        "max_steps": config.max_steps,
        "learning_rate": config.learning_rate,
        "lr_scheduler_type": config.lr_scheduler_type,
        "warmup_steps": config.warmup_steps,
        "weight_decay": config.weight_decay,
        "max_grad_norm": config.max_grad_norm,
        "per_device_train_batch_size": config.per_device_batch_size,
        "per_device_eval_batch_size": config.per_device_batch_size,
        "gradient_accumulation_steps": config.gradient_accumulation_steps,
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "logging_steps": config.logging_steps,
        "save_strategy": "steps" if config.save_steps > 0 else "no",
        "save_steps": max(config.save_steps, 1),
        "save_total_limit": config.save_total_limit,
        "report_to": config.report_to,
        "remove_unused_columns": False,
        "model_init_kwargs": model_init_kwargs or None,
        "num_generations": config.num_generations,
        "num_generations_eval": 1,
        "max_completion_length": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "epsilon": config.epsilon,
        "num_iterations": config.num_iterations,
        "chat_template_kwargs": chat_template_kwargs(config),
        "use_vllm": config.use_vllm,
        "vllm_mode": config.vllm_mode,
        "vllm_gpu_memory_utilization": config.vllm_gpu_memory_utilization,
        "vllm_server_base_url": config.vllm_server_base_url,
        "log_completions": config.log_completions,
    }
    if config.beta is not None:
        args["beta"] = config.beta
    if eval_enabled:
        args.update(eval_strategy="steps", eval_steps=config.eval_steps)
    return args


def build_trl_trainer(config: TrainConfig) -> EnvGRPOTrainer | EnvRLOOTrainer:
    """GRPO or RLOO trainer on the configured envs and tasks, ready for `.train()`."""
    from datasets import Dataset
    from trl import GRPOConfig, RLOOConfig

    from envfactory_gym.training.data import (
        list_tasks,
        mixture_weights,
        prompt_rows,
        resolve_envs,
    )

    env_ids = resolve_envs(config.envs)
    weights = mixture_weights(env_ids, config.env_weights)
    tasks = list_tasks(env_ids, config.split, config.tasks)
    index = PromptIndex()
    train_dataset = Dataset.from_list(prompt_rows(tasks, index))
    eval_dataset = None
    if config.eval_steps > 0:
        eval_tasks = list_tasks(env_ids, config.eval_split, config.eval_tasks)[
            : config.eval_episodes
        ]
        eval_dataset = Dataset.from_list(prompt_rows(eval_tasks, index))

    tokenizer = load_tokenizer(config.model)
    curriculum = (
        Curriculum(tasks, config.curriculum_threshold, config.curriculum_window)
        if config.curriculum
        else None
    )
    rollout_func = make_rollout_func(
        make_runner(config, tokenizer), index, config.tau_at, curriculum, config.output_dir
    )
    common = {
        "model": config.model,
        "reward_funcs": [env_reward],
        "train_dataset": train_dataset,
        "eval_dataset": eval_dataset,
        "processing_class": tokenizer,
        "peft_config": lora_config(config),
        "callbacks": [metrics_callback(config.output_dir)],
        "task_refs": tasks,
        "env_weights": weights,
        "curriculum": curriculum,
        "rollout_func": rollout_func,
    }
    args = _trl_args(config, eval_dataset is not None)
    if config.algo == "grpo":
        grpo_args = GRPOConfig(
            **args,
            loss_type=config.loss_type,
            scale_rewards=config.scale_rewards,
            mask_truncated_completions=False,
        )
        return EnvGRPOTrainer(args=grpo_args, **common)
    if config.algo == "rloo":
        return EnvRLOOTrainer(args=RLOOConfig(**args), **common)
    raise ValueError(f"build_trl_trainer handles grpo and rloo, not {config.algo!r}")


def train_trl(config: TrainConfig) -> EnvGRPOTrainer | EnvRLOOTrainer:
    """Build the trainer, train (resuming if asked), save the final model and rank summaries."""
    trainer = build_trl_trainer(config)
    trainer.train(resume_from_checkpoint=resume_checkpoint(config))
    trainer.save_model(config.output_dir)
    model = trainer.accelerator.unwrap_model(trainer.model)
    write_rank_summary(
        config.output_dir,
        trainer.accelerator.process_index,
        {
            "algo": config.algo,
            "global_step": trainer.state.global_step,
            "num_processes": trainer.accelerator.num_processes,
            "parameter_digest": parameter_digest(model),
        },
    )
    return trainer
