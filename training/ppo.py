"""Multi-turn PPO for tool-use agents, in one readable module on Accelerate.

TRL removed its PPO trainer in 1.13 (1.12's experimental one was single-turn and reward-model
based), so this is ours, in CleanRL's spirit with verl's algorithm:

1. Rollout: each process plays its share of episodes with the current policy (training/rollout.py);
   the token mask marks the policy's own tokens.
2. Score: old log-probs and values under the current actor-critic, reference log-probs under
   the frozen starting policy (or the policy with its LoRA adapter disabled).
3. Rewards per policy token: `-kl_coef * (logp - logp_ref)`, plus the env's episode reward on
   the last policy token. GAE runs over the policy's tokens only (env tokens are skipped, so
   the next state of a turn's last token is the next turn's first token).
4. Update: `ppo_epochs` passes over shuffled minibatches of episodes; clipped policy loss,
   clipped value loss, one optimizer (policy and critic parameter groups).

Critic: a value model on a copy of the policy backbone (transformers' TokenClassification head
with one label), or with `shared_backbone` a value head on the policy's own last hidden state.
Policy and critic live in one `ActorCritic` module, so one `accelerator.prepare` covers DDP and
DeepSpeed ZeRO-2/3. Log-probs come from TRL's fused LM head (no full-vocabulary logits).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envfactory_gym.training.common import lockstep_fn
from envfactory_gym.training.config import TrainConfig
from envfactory_gym.training.rollout import Episode, group_stats, summarize

# ----------------------------------------------------------------------------------------------
# The algorithm's arithmetic (pure functions, tested on hand-computed examples)
# ----------------------------------------------------------------------------------------------


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the entries where `mask` is 1."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit variance over the masked entries; masked-out entries stay 0."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    return (values - mean) * torch.rsqrt(var + eps) * mask


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-level GAE over the positions where `mask` is 1 (policy tokens), per row.

    Positions with mask 0 (tool results, user turns, padding) are skipped: the successor of a
    policy token is the next policy token in the row, and the last one has value 0 after it.
    Returns (advantages, returns), both 0 where mask is 0.
    """
    mask = mask.to(values.dtype)
    advantages = torch.zeros_like(values)
    last_gae = torch.zeros_like(values[:, 0])
    next_value = torch.zeros_like(values[:, 0])
    for t in reversed(mask.any(dim=0).nonzero().flatten().tolist()):
        on = mask[:, t] > 0
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        advantages[:, t] = torch.where(on, gae, torch.zeros_like(gae))
        last_gae = torch.where(on, gae, last_gae)
        next_value = torch.where(on, values[:, t], next_value)
    return advantages, (advantages + values) * mask


def token_rewards(
    episode_rewards: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: KL penalty on every policy token, episode reward on the last one.

    Returns (rewards, per-token KL estimate `logp - logp_ref`), both 0 off the mask.
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask if ref_logprobs is not None else torch.zeros_like(mask)
    rewards = -kl_coef * kl
    positions = torch.arange(mask.size(1), device=mask.device).expand_as(mask)
    last = torch.where(mask > 0, positions, torch.full_like(positions, -1)).max(dim=1).values
    rows = (last >= 0).nonzero().flatten()
    rewards[rows, last[rows]] += episode_rewards[rows].to(rewards.dtype)
    return rewards, kl


def ppo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
    cliprange_value: float,
    vf_coef: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped policy loss + `vf_coef` * clipped value loss, averaged over masked tokens."""
    mask = mask.to(logprobs.dtype)
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    pg_losses = -advantages * ratio
    pg_clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    pg_loss = masked_mean(torch.maximum(pg_losses, pg_clipped), mask)
    values_clipped = old_values + torch.clamp(
        values - old_values, -cliprange_value, cliprange_value
    )
    vf_losses = torch.maximum((values - returns) ** 2, (values_clipped - returns) ** 2)
    vf_loss = 0.5 * masked_mean(vf_losses, mask)
    loss = pg_loss + vf_coef * vf_loss
    with torch.no_grad():
        stats = {
            "loss/policy": pg_loss.detach(),
            "loss/value": vf_loss.detach(),
            "policy/approx_kl": masked_mean((ratio - 1) - log_ratio, mask),
            "policy/clipfrac": masked_mean((pg_clipped > pg_losses).to(mask.dtype), mask),
            "value/clipfrac": masked_mean(
                ((values_clipped - returns) ** 2 > (values - returns) ** 2).to(mask.dtype), mask
            ),
        }
    return loss, stats


# ----------------------------------------------------------------------------------------------
# Actor-critic
# ----------------------------------------------------------------------------------------------


class ActorCritic(nn.Module):
    """The policy and its critic as one module: per-token log-probs, entropies and values."""

    def __init__(self, policy: nn.Module, critic: nn.Module | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.critic = critic
        self.value_head = None
        self._hidden: torch.Tensor | None = None
        if critic is None:  # shared backbone: a value head on the policy's last hidden state
            hidden = policy.config.get_text_config().hidden_size
            self.value_head = nn.Linear(hidden, 1)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
            _decoder(policy).register_forward_hook(self._keep_hidden)

    def _keep_hidden(self, module: nn.Module, args: Any, output: Any) -> None:
        self._hidden = output.last_hidden_state

    # The gradient-checkpointing switches TRL's `unwrap_model_for_generation` expects.
    @property
    def is_gradient_checkpointing(self) -> bool:
        return bool(getattr(self.policy, "is_gradient_checkpointing", False))

    def gradient_checkpointing_disable(self) -> None:
        for model in (self.policy, self.critic):
            if model is not None:
                model.gradient_checkpointing_disable()

    def gradient_checkpointing_enable(
        self, gradient_checkpointing_kwargs: dict | None = None
    ) -> None:
        kwargs = gradient_checkpointing_kwargs or {"use_reentrant": False}
        for model in (self.policy, self.critic):
            if model is not None:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Shapes (B, T-1): log p(token t+1), entropy at t, value of the state before t+1."""
        out = self.policy(
            input_ids=input_ids, attention_mask=attention_mask, labels=labels, fused_lm_head=True
        )
        if self.value_head is not None:
            hidden, self._hidden = self._hidden, None
            values = self.value_head(hidden[:, :-1].to(self.value_head.weight.dtype)).squeeze(-1)
        else:
            logits = self.critic(input_ids=input_ids, attention_mask=attention_mask).logits
            values = logits[:, :-1, 0]
        return out.log_probs, out.entropy, values.float()


def _decoder(model: nn.Module) -> nn.Module:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


def build_actor_critic(config: TrainConfig) -> tuple[ActorCritic, nn.Module | None]:
    """(actor-critic, frozen reference policy or None when LoRA's disabled adapter serves)."""
    from transformers import AutoModelForCausalLM, AutoModelForTokenClassification
    from trl.trainer.utils import add_fused_lm_head

    from envfactory_gym.training.common import lora_config

    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if config.attn_implementation:
        kwargs["attn_implementation"] = config.attn_implementation
    policy = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    add_fused_lm_head(policy, temperature=config.temperature, outputs=("log_probs", "entropy"))
    critic = None
    if not config.shared_backbone:
        critic = AutoModelForTokenClassification.from_pretrained(
            config.model, num_labels=1, **kwargs
        )
        critic.config.pad_token_id = policy.config.pad_token_id
    if config.gradient_checkpointing:
        for model in (policy, critic):
            if model is not None:
                model.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
    reference = None
    if config.lora:
        from peft import get_peft_model

        policy = get_peft_model(policy, lora_config(config))
        if critic is not None:
            critic_lora = lora_config(config, task_type="TOKEN_CLS")
            critic_lora.modules_to_save = ["score"]
            critic = get_peft_model(critic, critic_lora)
    else:
        reference = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
        add_fused_lm_head(reference, temperature=config.temperature)
        reference.requires_grad_(False).eval()
    return ActorCritic(policy, critic), reference


# ----------------------------------------------------------------------------------------------
# Batches
# ----------------------------------------------------------------------------------------------


def collate_episodes(episodes: Sequence[Episode], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids`, `attention_mask`, `labels` (-100 off policy tokens), the
    shifted `action_mask` (B, T-1) marking policy tokens, and episode `rewards`."""
    width = max(len(e.prompt_ids) + len(e.completion_ids) for e in episodes)
    input_ids = torch.full((len(episodes), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    token_mask = torch.zeros_like(input_ids)
    for row, episode in enumerate(episodes):
        ids = episode.prompt_ids + episode.completion_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        start = len(episode.prompt_ids)
        token_mask[row, start : len(ids)] = torch.tensor(episode.mask, dtype=torch.long)
    labels = torch.where(token_mask.bool(), input_ids, torch.full_like(input_ids, -100))
    return {
        "input_ids": input_ids,
        "attention_mask": attention,
        "labels": labels,
        "action_mask": token_mask[:, 1:].float(),
        "rewards": torch.tensor([e.reward for e in episodes], dtype=torch.float32),
    }


def _batched(fn: Any, batch: dict[str, torch.Tensor], size: int) -> tuple[torch.Tensor, ...]:
    """Run `fn(input_ids, attention_mask, labels)` over row chunks; concatenate the outputs."""
    outputs = []
    for start in range(0, batch["input_ids"].size(0), size):
        rows = slice(start, start + size)
        outputs.append(
            fn(batch["input_ids"][rows], batch["attention_mask"][rows], batch["labels"][rows])
        )
    return tuple(torch.cat(parts) for parts in zip(*outputs, strict=True))


# ----------------------------------------------------------------------------------------------
# Training loop
# ----------------------------------------------------------------------------------------------


class PPOTrainer:
    """Rollout -> score -> GAE -> clipped updates, repeated `max_steps` times."""

    def __init__(self, config: TrainConfig) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import get_scheduler

        from envfactory_gym.training.common import (
            EpisodeLog,
            MetricsLog,
            load_tokenizer,
            make_runner,
        )
        from envfactory_gym.training.data import (
            Curriculum,
            TaskSampler,
            list_tasks,
            mixture_weights,
            resolve_envs,
        )

        self.config = config
        log_with = [r for r in config.report_to if r != "none"] or None
        self.accelerator = Accelerator(
            mixed_precision="bf16" if config.bf16 else "no",
            log_with=log_with,
            project_dir=config.output_dir,
        )
        set_seed(config.seed, device_specific=True)
        self.tokenizer = load_tokenizer(config.model)
        self.runner = make_runner(config, self.tokenizer)
        env_ids = resolve_envs(config.envs)
        self.tasks = list_tasks(env_ids, config.split, config.tasks)
        self.eval_tasks = (
            list_tasks(env_ids, config.eval_split, config.eval_tasks)[: config.eval_episodes]
            if config.eval_steps > 0
            else []
        )
        self.curriculum = (
            Curriculum(self.tasks, config.curriculum_threshold, config.curriculum_window)
            if config.curriculum
            else None
        )
        world = self.accelerator.num_processes
        if config.per_device_batch_size % config.num_generations:
            raise ValueError("per_device_batch_size must be a multiple of num_generations")
        if config.per_device_batch_size % config.ppo_minibatches:
            raise ValueError("per_device_batch_size must be a multiple of ppo_minibatches")
        self.groups_per_rank = config.per_device_batch_size // config.num_generations
        self.sampler = TaskSampler(
            self.tasks,
            mixture_weights(env_ids, config.env_weights),
            mini_repeat_count=1,
            batch_size=self.groups_per_rank * world,
            seed=config.seed,
            curriculum=self.curriculum,
        )

        model, self.reference = build_actor_critic(config)
        critic_lr = config.critic_learning_rate or 10 * config.learning_rate
        critic_params = [
            p
            for name, p in model.named_parameters()
            if p.requires_grad and not name.startswith("policy.")
        ]
        policy_params = [p for p in model.policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            [
                {"params": policy_params, "lr": config.learning_rate},
                {"params": critic_params, "lr": critic_lr},
            ],
            weight_decay=config.weight_decay,
        )
        updates = config.max_steps * config.ppo_epochs * config.ppo_minibatches
        scheduler = get_scheduler(
            config.lr_scheduler_type,
            optimizer,
            num_warmup_steps=config.warmup_steps,
            num_training_steps=max(1, updates),
        )
        plugin = self.accelerator.state.deepspeed_plugin
        if plugin is not None:  # no dataloader to infer DeepSpeed's batch sizes from
            plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config_minibatch(config)
            plugin.deepspeed_config["gradient_accumulation_steps"] = 1
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            model, optimizer, scheduler
        )
        if self.reference is not None:
            if self.accelerator.state.deepspeed_plugin is not None:
                from trl.models import prepare_deepspeed

                self.reference = prepare_deepspeed(self.reference, self.accelerator)
            else:
                self.reference = self.reference.to(self.accelerator.device)
        self.metrics = MetricsLog(config.output_dir, enabled=self.accelerator.is_main_process)
        self.episode_log = EpisodeLog(config.output_dir, self.accelerator.process_index)
        self.step = 0
        if log_with:
            self.accelerator.init_trackers("envfactory-ppo", config=config.to_dict())

    # -- pieces of one step ----------------------------------------------------------------
    def _policy(self, model: Any) -> Any:
        return model.policy

    def rollout(self, requests: list[tuple[str, str]], greedy: bool = False) -> list[Episode]:
        """Play the requested (env_id, task_id) episodes with the current policy."""
        from envfactory_gym.training.generation import hf_generate_fn

        generate = hf_generate_fn(
            self.model,
            self.tokenizer,
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            greedy=greedy,
            accelerator=self.accelerator,
            unwrap=self._policy,
        )
        return self.runner.run(
            requests,
            generate,
            tau=self.config.tau_at(self.step),
            lockstep=lockstep_fn(self.accelerator),
        )

    def _requests(self) -> list[tuple[str, str]]:
        """This rank's share of the step's tasks, each repeated num_generations times."""
        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        drawn = [self.sampler.draw() for _ in range(self.groups_per_rank * world)]
        mine = drawn[rank * self.groups_per_rank : (rank + 1) * self.groups_per_rank]
        task_ids = [(self.tasks[i].env_id, self.tasks[i].task_id) for i in mine]
        return [t for t in task_ids for _ in range(self.config.num_generations)]

    def _reference_logprobs(self, ids, attention, labels) -> tuple[torch.Tensor]:
        out = self.reference(
            input_ids=ids, attention_mask=attention, labels=labels, fused_lm_head=True
        )
        return (out.log_probs,)

    @torch.no_grad()
    def score(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Old log-probs and values (current model), reference log-probs, GAE targets."""
        config, size = self.config, max(1, config_minibatch(self.config))
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        with self.accelerator.autocast():  # the precision the update's forward runs in
            old_logprobs, _, old_values = _batched(model, batch, size)
            if self.reference is not None:
                (ref_logprobs,) = _batched(self._reference_logprobs, batch, size)
            else:  # LoRA: the reference is the base model, i.e. the adapter disabled
                with model.policy.disable_adapter():
                    (ref_logprobs,) = _batched(lambda *a: model(*a)[:1], batch, size)
        model.train()
        mask = batch["action_mask"]
        rewards, kl = token_rewards(
            batch["rewards"], old_logprobs, ref_logprobs, mask, config.kl_coef
        )
        advantages, returns = compute_gae(rewards, old_values, mask, config.gamma, config.lam)
        if config.whiten_advantages:
            advantages = masked_whiten(advantages, mask)
        return {
            **batch,
            "old_logprobs": old_logprobs,
            "old_values": old_values,
            "advantages": advantages,
            "returns": returns,
            "kl": kl,
        }

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """`ppo_epochs` passes of shuffled minibatch updates; returns averaged loss stats."""
        config = self.config
        rows = batch["input_ids"].size(0)
        size = config_minibatch(config)
        totals: dict[str, float] = {}
        count = 0
        for _ in range(config.ppo_epochs):
            order = torch.randperm(rows)
            for start in range(0, rows, size):
                mb = {k: v[order[start : start + size]] for k, v in batch.items() if v.dim() > 0}
                logprobs, entropy, values = self.model(
                    mb["input_ids"], mb["attention_mask"], mb["labels"]
                )
                loss, stats = ppo_loss(
                    logprobs,
                    mb["old_logprobs"],
                    mb["advantages"],
                    values,
                    mb["old_values"],
                    mb["returns"],
                    mb["action_mask"],
                    config.cliprange,
                    config.cliprange_value,
                    config.vf_coef,
                )
                self.accelerator.backward(loss)
                if config.max_grad_norm > 0:
                    self.accelerator.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
                stats["policy/entropy"] = masked_mean(entropy.detach(), mb["action_mask"])
                for key, value in stats.items():
                    totals[key] = totals.get(key, 0.0) + float(value)
                count += 1
        return {key: value / count for key, value in totals.items()}

    def train_step(self) -> dict[str, float]:
        """One PPO iteration; returns the logged metrics (identical on every rank)."""
        from accelerate.utils import gather_object

        start = time.perf_counter()
        episodes = self.rollout(self._requests())
        rollout_time = time.perf_counter() - start
        batch = {
            k: v.to(self.accelerator.device)
            for k, v in collate_episodes(episodes, self.tokenizer.pad_token_id).items()
        }
        scored = self.score(batch)
        update_start = time.perf_counter()
        losses = self.update(scored)
        update_time = time.perf_counter() - update_start

        everyone = gather_object([_light(e) for e in episodes])
        if self.curriculum is not None:
            difficulty = {(t.env_id, t.task_id): t.difficulty for t in self.tasks}
            self.curriculum.update(
                [(difficulty[(e.env_id, e.task_id)], e.success) for e in everyone]
            )
        self.episode_log.write(episodes, self.step, "train")
        mask = scored["action_mask"]
        local = torch.tensor(
            [float(masked_mean(scored["kl"], mask)), float(mask.sum())],
            device=self.accelerator.device,
        )
        kl_mean, tokens = self.accelerator.reduce(local, reduction="mean").tolist()
        metrics = {
            **summarize(everyone),
            **group_stats([e.reward for e in everyone], self.config.num_generations),
        }
        loss_values = self.accelerator.reduce(
            torch.tensor(list(losses.values()), device=self.accelerator.device), reduction="mean"
        ).tolist()
        metrics.update(dict(zip(losses, loss_values, strict=True)))
        metrics.update(
            {
                "kl": kl_mean,
                "policy_tokens_per_rank": tokens,
                "learning_rate": self.scheduler.get_last_lr()[0],
                "time/rollout_s": rollout_time,
                "time/update_s": update_time,
                "time/step_s": time.perf_counter() - start,
            }
        )
        if self.curriculum is not None:
            metrics["curriculum/level"] = float(self.curriculum.level)
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Greedy episodes on the eval tasks (split over ranks); summary under `eval/`."""
        from accelerate.utils import gather_object

        world, rank = self.accelerator.num_processes, self.accelerator.process_index
        requests = [(t.env_id, t.task_id) for t in self.eval_tasks][rank::world]
        episodes = self.rollout(requests, greedy=True) if requests or world > 1 else []
        self.episode_log.write(episodes, self.step, "eval")
        return summarize(gather_object([_light(e) for e in episodes]), prefix="eval/")

    # -- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Accelerate state (models, optimizer, scheduler, RNGs) plus step and sampler state."""
        path = Path(self.config.output_dir) / f"checkpoint-{self.step}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            version, internal, gauss = self.sampler.rng.getstate()
            state = {"step": self.step, "sampler_rng": [version, list(internal), gauss]}
            if self.curriculum is not None:
                state["curriculum_level"] = self.curriculum.level
            (path / "ppo_state.json").write_text(json.dumps(state))
            self._prune_checkpoints()
        self.accelerator.wait_for_everyone()
        return path

    def _prune_checkpoints(self) -> None:
        import shutil

        limit = self.config.save_total_limit
        if not limit:
            return
        found = sorted(
            Path(self.config.output_dir).glob("checkpoint-*"),
            key=lambda p: int(p.name.split("-")[1]),
        )
        for old in found[:-limit]:
            shutil.rmtree(old, ignore_errors=True)

    def load_checkpoint(self, path: str) -> None:
        """Restore what `save_checkpoint` wrote."""
        self.accelerator.load_state(path)
        state = json.loads((Path(path) / "ppo_state.json").read_text())
        self.step = int(state["step"])
        if self.curriculum is not None:
            self.curriculum.level = int(state.get("curriculum_level", 0))
        version, internal, gauss = state["sampler_rng"]
        self.sampler.rng.setstate((version, tuple(internal), gauss))

    def save_final(self) -> None:
        """Policy (transformers or peft format) and tokenizer to output_dir, critic to critic.pt."""
        self.accelerator.wait_for_everyone()
        model = self.accelerator.unwrap_model(self.model)
        state = self.accelerator.get_state_dict(self.model)
        if self.accelerator.is_main_process:
            out = Path(self.config.output_dir)
            policy_state = {
                k[len("policy.") :]: v for k, v in state.items() if k.startswith("policy.")
            }
            model.policy.save_pretrained(out, state_dict=policy_state)
            self.tokenizer.save_pretrained(out)
            critic_state = {k: v for k, v in state.items() if not k.startswith("policy.")}
            torch.save(critic_state, out / "critic.pt")

    # -- the loop --------------------------------------------------------------------------
    def train(self, resume_from: str | None = None) -> None:
        """Iterate until `max_steps`: log, evaluate and checkpoint on their schedules."""
        if resume_from:
            self.load_checkpoint(resume_from)
        while self.step < self.config.max_steps:
            metrics = self.train_step()
            self.step += 1
            if self.config.eval_steps > 0 and self.step % self.config.eval_steps == 0:
                metrics.update(self.evaluate())
            if (
                self.step % max(1, self.config.logging_steps) == 0
                or self.step == self.config.max_steps
            ):
                self.metrics.write(self.step, metrics)
                self.accelerator.log(metrics, step=self.step)
                if self.accelerator.is_main_process:
                    keys = ("reward", "success", "turns", "loss/policy", "loss/value", "kl")
                    keys += ("tokens_per_s", "time/env_s", "time/step_s", "eval/success")
                    shown = {k: round(metrics[k], 4) for k in keys if k in metrics}
                    print(f"[ppo] step {self.step}/{self.config.max_steps} {shown}", flush=True)
            if self.config.save_steps > 0 and self.step % self.config.save_steps == 0:
                self.save_checkpoint()
        self.save_final()
        self.accelerator.end_training()


def config_minibatch(config: TrainConfig) -> int:
    """Episodes per PPO minibatch on each process."""
    return max(1, config.per_device_batch_size // config.ppo_minibatches)


def _light(episode: Episode) -> Episode:
    """A copy without the (long, shared) prompt ids, cheaper to gather across processes."""
    from dataclasses import replace

    return replace(episode, prompt_ids=[], logprobs=None)


def train_ppo(config: TrainConfig) -> PPOTrainer:
    """Run PPO as configured (resuming if asked); save the policy, critic and rank summary."""
    from envfactory_gym.training.common import (
        parameter_digest,
        resume_checkpoint,
        write_rank_summary,
    )

    trainer = PPOTrainer(config)
    trainer.train(resume_checkpoint(config))
    write_rank_summary(
        config.output_dir,
        trainer.accelerator.process_index,
        {
            "algo": "ppo",
            "global_step": trainer.step,
            "num_processes": trainer.accelerator.num_processes,
            "parameter_digest": parameter_digest(trainer.accelerator.unwrap_model(trainer.model)),
        },
    )
    return trainer
