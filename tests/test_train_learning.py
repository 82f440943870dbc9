"""Training works, not only runs: SFT on oracle replays, then GRPO, raise the tiny model's success.

Slow (several minutes on 2 CPU cores): run with `pytest --runslow tests/test_train_learning.py`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("trl")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
AIRLINE = "envfactory/Airline-v0"
TASKS = [f"airline-gift_card_balance-0{i}" for i in range(3)]  # one call, then state the balance
EPISODE_FLAGS = ["--max_turns", "4", "--max_new_tokens", "48", "--max_episode_tokens", "1024"]


def run_train(args: list) -> object:
    spec = importlib.util.spec_from_file_location("envfactory_train_entry", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main([str(a) for a in args])


def greedy_success(model_dir: Path) -> tuple[float, float]:
    """(success rate, mean reward) of greedy episodes, one per task."""
    from transformers import AutoModelForCausalLM

    from envfactory_gym.training.common import load_tokenizer
    from envfactory_gym.training.generation import hf_generate_fn
    from envfactory_gym.training.rollout import RolloutRunner

    tokenizer = load_tokenizer(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    runner = RolloutRunner(
        tokenizer,
        max_turns=4,
        max_new_tokens=48,
        max_episode_tokens=1024,
        chat_template_kwargs={"enable_thinking": False},
    )
    generate = hf_generate_fn(model, tokenizer, max_new_tokens=48, greedy=True)
    episodes = runner.run([(AIRLINE, task) for task in TASKS], generate)
    n = len(episodes)
    return sum(e.success for e in episodes) / n, sum(e.reward for e in episodes) / n


def test_sft_then_grpo_raise_success_on_easy_tasks(tmp_path):
    from envfactory_gym.training.tiny_model import build_tiny_model

    base = build_tiny_model(tmp_path / "tiny", vocab_size=4096)
    start_success, start_reward = greedy_success(base)

    sft = tmp_path / "sft"
    run_train(
        ["--algo", "sft", "--model", base, "--output_dir", sft, "--tasks", *TASKS]
        + ["--max_steps", 150, "--per_device_batch_size", 1, "--learning_rate", 5e-3]
        + ["--lr_scheduler_type", "linear", "--save_steps", 0, "--logging_steps", 10]
    )
    sft_success, sft_reward = greedy_success(sft)

    grpo = tmp_path / "grpo"
    trainer = run_train(
        ["--algo", "grpo", "--model", sft, "--output_dir", grpo, "--tasks", *TASKS]
        + ["--num_generations", 4, "--per_device_batch_size", 4, "--max_steps", 3]
        + ["--learning_rate", 1e-4, "--save_steps", 0, "--seed", 0]
        + EPISODE_FLAGS
    )
    assert trainer.state.global_step == 3
    final_success, final_reward = greedy_success(grpo)
    print(
        f"greedy success/reward on {len(TASKS)} tasks: base {start_success:.2f}/{start_reward:.2f},"
        f" after SFT {sft_success:.2f}/{sft_reward:.2f},"
        f" after GRPO {final_success:.2f}/{final_reward:.2f}"
    )
    assert start_success == 0.0
    assert final_success > start_success
    assert final_reward > start_reward
