"""SFT warm start: replay tasks with the oracle, train on its turns with TRL's SFTTrainer.

Each training task is played in the env by `OracleAgent` (its ground-truth calls, then its
answer); episodes scoring at least `sft_min_reward` become conversations in the env's own
OpenAI message format. `assistant_only_loss=True` makes SFTTrainer train on assistant turns
only (it renders with TRL's Qwen3 training template, whose `{% generation %}` markers give the
assistant mask); system prompt, user turns and tool results are context, never targets.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from envfactory_gym.training.common import (
    load_tokenizer,
    lora_config,
    metrics_callback,
    parameter_digest,
    resume_checkpoint,
    write_rank_summary,
)
from envfactory_gym.training.config import TrainConfig
from envfactory_gym.training.data import TaskRef


def _storable(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with tool-call arguments as JSON text: Arrow would otherwise merge the argument
    dicts of different tools into one struct and render the missing keys as nulls. The Qwen3
    template prints string arguments verbatim, so the rendered text is unchanged."""
    out = []
    for message in messages:
        item = {"role": message["role"], "content": message.get("content") or ""}
        if message.get("tool_calls"):
            item["tool_calls"] = [
                {
                    "type": "function",
                    "function": {
                        "name": call["function"]["name"],
                        "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False),
                    },
                }
                for call in message["tool_calls"]
            ]
        if message["role"] == "tool":
            item["name"] = message.get("name") or ""
        out.append(item)
    return out


def oracle_trajectories(
    tasks: Sequence[TaskRef],
    *,
    max_turns: int = 30,
    min_reward: float = 1.0,
    reward_overrides: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One SFT row per task the oracle solves: `messages`, `tools` (JSON text), env and task."""
    import gymnasium as gym

    from envfactory_gym.agents import OracleAgent
    from envfactory_gym.evaluation import run_episode

    rows, envs = [], {}
    agent = OracleAgent()
    for ref in tasks:
        if ref.env_id not in envs:
            envs[ref.env_id] = gym.make(
                ref.env_id,
                max_turns=max_turns,
                reward_config=dict(reward_overrides or {}),
                disable_env_checker=True,
            )
        episode = run_episode(envs[ref.env_id], agent, ref.task_id, keep_messages=True)
        if episode["reward"] >= min_reward:
            rows.append(
                {
                    "messages": _storable(episode["messages"]),
                    "tools": json.dumps(episode["tools"], ensure_ascii=False),
                    "env_id": ref.env_id,
                    "task_id": ref.task_id,
                    "reward": float(episode["reward"]),
                }
            )
    for env in envs.values():
        env.close()
    return rows


def build_sft_trainer(config: TrainConfig) -> Any:
    """TRL SFTTrainer on oracle replays of the configured training tasks."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from envfactory_gym.training.data import list_tasks, resolve_envs

    env_ids = resolve_envs(config.envs)
    tasks = list_tasks(env_ids, config.split, config.tasks)
    rows = oracle_trajectories(
        tasks,
        max_turns=config.max_turns,
        min_reward=config.sft_min_reward,
        reward_overrides=config.reward_overrides(),
    )
    if not rows:
        raise ValueError("the oracle solved none of the selected tasks; nothing to train on")
    columns = ("messages", "tools")
    train_dataset = Dataset.from_list([{k: row[k] for k in columns} for row in rows])
    eval_dataset = None
    if config.eval_steps > 0:
        eval_tasks = list_tasks(env_ids, config.eval_split, config.eval_tasks)
        eval_rows = oracle_trajectories(
            eval_tasks[: config.eval_episodes], max_turns=config.max_turns
        )
        eval_dataset = Dataset.from_list([{k: row[k] for k in columns} for row in eval_rows])

    model_init_kwargs = {}
    if config.attn_implementation:
        model_init_kwargs["attn_implementation"] = config.attn_implementation
    args = SFTConfig(
        output_dir=config.output_dir,
        seed=config.seed,
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.per_device_batch_size,
        per_device_eval_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        bf16=config.bf16,
        gradient_checkpointing=config.gradient_checkpointing,
        logging_steps=config.logging_steps,
        save_strategy="steps" if config.save_steps > 0 else "no",
        save_steps=max(config.save_steps, 1),
        save_total_limit=config.save_total_limit,
        report_to=config.report_to,
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=config.eval_steps if eval_dataset is not None else None,
        assistant_only_loss=True,
        max_length=config.max_seq_length,
        shuffle_dataset=True,
        model_init_kwargs=model_init_kwargs or None,
        dataset_num_proc=None,
    )
    return SFTTrainer(
        model=config.model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=load_tokenizer(config.model),
        peft_config=lora_config(config),
        callbacks=[metrics_callback(config.output_dir)],
    )


def train_sft(config: TrainConfig) -> Any:
    """Build, train (resuming if asked), save the final model and the rank summary."""
    trainer = build_sft_trainer(config)
    trainer.train(resume_from_checkpoint=resume_checkpoint(config))
    trainer.save_model(config.output_dir)
    write_rank_summary(
        config.output_dir,
        trainer.accelerator.process_index,
        {
            "algo": "sft",
            "global_step": trainer.state.global_step,
            "num_processes": trainer.accelerator.num_processes,
            "examples": len(trainer.train_dataset),
            "parameter_digest": parameter_digest(trainer.accelerator.unwrap_model(trainer.model)),
        },
    )
    return trainer
