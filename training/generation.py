"""Per-turn generation with a transformers model (PPO, evaluation); GRPO/RLOO use TRL's."""

from __future__ import annotations

from typing import Any

import torch

from envfactory_gym.training.rollout import GenerateFn


def hf_generate_fn(
    model: Any,
    tokenizer: Any,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    greedy: bool = False,
    accelerator: Any = None,
    unwrap: Any = None,
) -> GenerateFn:
    """Batched `model.generate` for one assistant turn; returns new ids cut after the first stop.

    With an `accelerator`, the (possibly DDP/DeepSpeed-wrapped) model is unwrapped for generation
    with TRL's `unwrap_model_for_generation`; `unwrap` picks the policy inside a wrapper module.
    """
    from transformers import GenerationConfig

    stop_ids = [tokenizer.eos_token_id]
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in stop_ids:
        stop_ids.append(tokenizer.pad_token_id)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens,
        do_sample=not greedy,
        temperature=temperature if not greedy else None,
        top_p=top_p if not greedy else None,
        top_k=0 if not greedy else None,
        eos_token_id=stop_ids,
        pad_token_id=tokenizer.pad_token_id,
    )

    def run(policy: Any, prompt_ids: list[list[int]]) -> list[list[int]]:
        device = next(policy.parameters()).device
        width = max(len(p) for p in prompt_ids)
        input_ids = torch.full((len(prompt_ids), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros_like(input_ids)
        for row, ids in enumerate(prompt_ids):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        was_training = policy.training
        policy.eval()
        with torch.no_grad():
            output = policy.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                generation_config=config,
            )
        policy.train(was_training)
        completions = []
        for row in output[:, width:].tolist():
            cut = next((i + 1 for i, t in enumerate(row) if t in stop_ids), len(row))
            completions.append(row[:cut])
        return completions

    def generate(prompt_ids: list[list[int]]) -> tuple[list[list[int]], None]:
        if accelerator is None:
            return run(unwrap(model) if unwrap else model, prompt_ids), None
        from trl.models import unwrap_model_for_generation

        with unwrap_model_for_generation(model, accelerator) as unwrapped:
            return run(unwrap(unwrapped) if unwrap else unwrapped, prompt_ids), None

    return generate
