"""One real GRPO, RLOO, PPO and SFT step each on Airline-v0 through train.py, on a tiny Qwen3.

Each test checks that the parameters changed, that the rewards are the env's (the logged
actions replayed in a fresh env score the same), and that the loss saw only the policy's own
tokens (tool results and user turns masked out). A two-process run checks that both ranks
stepped and ended with identical weights; a resume run continues from a checkpoint.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("trl")

import gymnasium as gym  # noqa: E402

import envfactory_gym  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]
AIRLINE = "envfactory/Airline-v0"
TASK = "airline-gift_card_balance-00"
EPISODE_FLAGS = ["--max_turns", "4", "--max_new_tokens", "48", "--max_episode_tokens", "1024"]


def _train_module():
    spec = importlib.util.spec_from_file_location("envfactory_train_entry", REPO / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_train(args: list[str]):
    """`python train.py ARGS`, in this process (returns the trainer)."""
    return _train_module().main([str(a) for a in args])


def weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def assert_changed(before: Path, after: Path) -> None:
    old, new = weights(before), weights(after)
    assert old.keys() == new.keys()
    changed = [k for k in old if not torch.equal(old[k], new[k])]
    assert changed, "no parameter changed"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assert_rewards_from_env(output_dir: Path, rank: int = 0) -> list[dict]:
    """Replay each logged episode's actions in a fresh env: same reward, same breakdown."""
    episodes = read_jsonl(output_dir / "rollouts" / f"rank{rank}.jsonl")
    assert episodes
    env = gym.make(AIRLINE, max_turns=4)
    for episode in episodes:
        _, info = env.reset(options={"task_id": episode["task_id"]})
        reward, done = 0.0, False
        for action in episode["actions"]:
            assert not done
            _, reward, terminated, truncated, info = env.step(action)
            done = terminated or truncated
        if done:
            assert reward == pytest.approx(episode["reward"])
            assert info["reward_breakdown"] == episode["breakdown"]
        else:  # out of the token budget: scored as it stood
            assert episode["out_of_budget"]
            assert env.unwrapped.score().model_dump() == episode["breakdown"]
    return episodes


def assert_policy_only_mask(tokenizer, ids: torch.Tensor, mask: torch.Tensor, episodes: list):
    """Masked-in tokens are exactly the sampled turns (each turn as the env received it); the
    rest are env turns (tool results, user replies, turn headers) or padding. Returns how many
    env turns were masked out."""
    sent = {tuple(e["actions"]) for e in episodes}
    eos, pad = tokenizer.eos_token, tokenizer.pad_token
    env_turns = 0
    for row_ids, row_mask in zip(ids.tolist(), mask.tolist(), strict=True):
        segments: list[tuple[int, list[int]]] = []
        for token, flag in zip(row_ids, row_mask, strict=True):
            if not segments or segments[-1][0] != flag:
                segments.append((flag, []))
            segments[-1][1].append(token)
        turns = []
        for flag, tokens in segments:
            text = tokenizer.decode(tokens)
            if flag:
                assert "<|im_start|>" not in text and "<tool_response>" not in text
                turns.append(tokenizer.decode(tokens, skip_special_tokens=True))
                continue
            text = text.replace(pad, "")
            text = text[len(eos) :] if text.startswith(eos) else text  # closing a cut turn
            assert text == "" or text.startswith("\n<|im_start|>user\n"), text[:80]
            env_turns += text.startswith("\n<|im_start|>user\n")
        assert tuple(turns) in sent  # what the policy sampled is what the env received
    return env_turns


# ---------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from envfactory_gym.training.tiny_model import build_tiny_model

    # hidden 128, 2 layers; the real Qwen3 tokenizer cut to 4096 tokens keeps CPU steps short
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", vocab_size=4096)


@pytest.fixture(scope="session")
def warm_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model behaviour-cloned on the oracle's episode of TASK (our rollout token stream,
    loss on the policy mask), so that RL steps see rewards that differ within a group."""
    from transformers import AutoModelForCausalLM

    from envfactory_gym.agents import OracleAgent
    from envfactory_gym.training.common import load_tokenizer
    from envfactory_gym.training.rollout import RolloutRunner

    tokenizer = load_tokenizer(str(tiny_model))
    env = gym.make(AIRLINE)
    _, info = env.reset(options={"task_id": TASK})
    tools, messages = info["tools"], info["messages"]
    agent, texts, done = OracleAgent(), [], False
    agent.reset(env.unwrapped.task)
    while not done:
        texts.append(agent.act(messages, tools))
        _, _, terminated, truncated, info = env.step(texts[-1])
        messages.extend(info["new_messages"])
        done = terminated or truncated
    queue = list(texts)

    def oracle(prompts):
        return [tokenizer.encode(queue.pop(0)) + [tokenizer.eos_token_id] for _ in prompts], None

    runner = RolloutRunner(
        tokenizer,
        max_turns=4,
        max_new_tokens=48,
        max_episode_tokens=1024,
        chat_template_kwargs={"enable_thinking": False},  # as train.py renders by default
    )
    (episode,) = runner.run([(AIRLINE, TASK)], oracle)
    assert episode.success
    ids = torch.tensor(episode.prompt_ids + episode.completion_ids)
    targets = torch.tensor([0] * len(episode.prompt_ids) + episode.mask)[1:].nonzero().flatten()

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / 120)
    for _ in range(60):  # about where greedy decoding first solves the task
        hidden = model.model(input_ids=ids[None]).last_hidden_state[0, :-1]
        logits = model.lm_head(hidden[targets])
        loss = torch.nn.functional.cross_entropy(logits, ids[1:][targets])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    assert loss.item() < 0.2
    out = tmp_path_factory.mktemp("warm") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# ------------------------------------------------------------------------------------- SFT
def test_sft_step_trains_only_on_assistant_tokens(tiny_model, tmp_path):
    out = tmp_path / "sft"
    trainer = run_train(
        ["--algo", "sft", "--model", tiny_model, "--output_dir", out, "--max_steps", 2]
        + ["--per_device_batch_size", 2, "--learning_rate", 1e-3, "--save_steps", 0]
        + ["--tasks", "airline-gift_card_balance-0[0-1]", "airline-cheapest_direct-00"]
    )
    assert_changed(tiny_model, out)
    assert trainer.state.global_step == 2
    tokenizer = trainer.processing_class
    dataset = trainer.train_dataset
    assert len(dataset) == 3  # one oracle trajectory per task, all solved
    for row in dataset:
        ids = row["input_ids"]
        mask = [label != -100 for label in row["labels"]]  # what the loss is computed on
        assert [label for label in row["labels"] if label != -100] == [
            t for t, m in zip(ids, mask, strict=True) if m
        ]
        trained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if m])
        context = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
        assert "<tool_call>" in trained and trained.count("<|im_end|>") >= 2  # calls + answer
        for env_text in ("<tool_response>", "<|im_start|>user", "<|im_start|>system", "# Tools"):
            assert env_text not in trained and env_text in context
    logs = read_jsonl(out / "metrics.jsonl")
    assert any("loss" in entry for entry in logs)


# ------------------------------------------------------------------------------- GRPO, RLOO
def _rl_args(algo: str, model: Path, out: Path, group: int = 6) -> list:
    return (
        ["--algo", algo, "--model", model, "--output_dir", out, "--tasks", TASK]
        + ["--num_generations", group, "--per_device_batch_size", group, "--max_steps", 1]
        + ["--learning_rate", 1e-3, "--save_steps", 0, "--seed", 0, "--tau", 0.5]
        + EPISODE_FLAGS
    )


@pytest.mark.parametrize("algo", ["grpo", "rloo"])
def test_trl_step_uses_env_reward_and_policy_mask(algo, warm_model, tmp_path, monkeypatch):
    from trl import GRPOTrainer, RLOOTrainer

    seen: list[dict] = []
    base = GRPOTrainer if algo == "grpo" else RLOOTrainer
    original = base._compute_loss

    def recording(self, model, inputs):
        if algo == "grpo":
            mask = inputs["completion_mask"] * inputs["tool_mask"]
        else:  # ours: env mask applied to TRL's log-probs, hence to its loss and KL
            mask = inputs["completion_mask"] * self._env_mask
        seen.append({"ids": inputs["completion_ids"].cpu(), "mask": mask.cpu()})
        return original(self, model, inputs)

    monkeypatch.setattr(base, "_compute_loss", recording)
    out = tmp_path / algo
    trainer = run_train(_rl_args(algo, warm_model, out))
    assert trainer.state.global_step == 1
    assert_changed(warm_model, out)

    episodes = assert_rewards_from_env(out)
    rewards = [e["reward"] for e in episodes]
    assert len(set(rewards)) > 1  # a group with reward variance, hence a gradient
    logged = [e for e in read_jsonl(out / "metrics.jsonl") if "rewards/env_reward/mean" in e][0]
    assert logged["rewards/env_reward/mean"] == pytest.approx(sum(rewards) / len(rewards))
    for key in (
        "env/Airline-v0/success",
        "reward_trace",
        "tool_call_validity",
        "turns",
        "tokens_per_s",
        "time/env_s",
        "time/generation_s",
    ):
        assert key in logged

    (batch,) = seen
    tokenizer = trainer.processing_class
    env_segments = assert_policy_only_mask(tokenizer, batch["ids"], batch["mask"], episodes)
    assert env_segments >= 1  # some episode called a tool; its result was masked out
    assert sum(e["tool_calls"] for e in episodes) >= 1


# ------------------------------------------------------------------------------------- PPO
def test_ppo_step_resume_and_mask(warm_model, tmp_path, monkeypatch):
    from envfactory_gym.training import ppo

    batches, loss_masks = [], []
    collate, loss_fn = ppo.collate_episodes, ppo.ppo_loss

    def recording_collate(episodes, pad_id):
        batch = collate(episodes, pad_id)
        batches.append(batch)
        return batch

    def recording_loss(*args, **kwargs):
        loss_masks.append(args[6].detach().cpu())
        return loss_fn(*args, **kwargs)

    monkeypatch.setattr(ppo, "collate_episodes", recording_collate)
    monkeypatch.setattr(ppo, "ppo_loss", recording_loss)
    out = tmp_path / "ppo"
    args = (
        ["--algo", "ppo", "--model", warm_model, "--output_dir", out, "--tasks", TASK]
        + ["--num_generations", 2, "--per_device_batch_size", 4, "--ppo_minibatches", 2]
        + ["--ppo_epochs", 1, "--learning_rate", 1e-3, "--save_steps", 1, "--seed", 0]
        + EPISODE_FLAGS
    )
    trainer = run_train(args + ["--max_steps", 1])
    assert trainer.step == 1 and (out / "checkpoint-1" / "ppo_state.json").exists()
    assert_changed(warm_model, out)
    assert (out / "critic.pt").exists()
    episodes = assert_rewards_from_env(out)

    (batch,) = batches
    assert sum(int(m.sum()) for m in loss_masks) == int(batch["action_mask"].sum())
    ids = batch["input_ids"][:, 1:]
    completion = torch.zeros_like(ids, dtype=torch.bool)
    for row, length in enumerate((batch["labels"] != -100).int().argmax(dim=1).tolist()):
        completion[row, length - 1 :] = True  # from the first policy token on
    env_segments = assert_policy_only_mask(
        trainer.tokenizer,
        torch.where(completion, ids, trainer.tokenizer.pad_token_id),
        batch["action_mask"].long(),
        episodes,
    )
    assert env_segments >= 1
    metrics = read_jsonl(out / "metrics.jsonl")
    assert metrics[-1]["step"] == 1
    for key in ("loss/policy", "loss/value", "kl", "reward", "time/env_s", "tokens_per_s"):
        assert key in metrics[-1]

    # resume: continue from checkpoint-1 to step 2 (same output dir)
    trainer = run_train(args + ["--max_steps", 2, "--resume", "auto"])
    assert trainer.step == 2
    assert [m["step"] for m in read_jsonl(out / "metrics.jsonl")] == [1, 2]


# ------------------------------------------------------------------------------ two processes
@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_two_processes_step_in_sync(algo, warm_model, tmp_path):
    out = tmp_path / f"ddp-{algo}"
    if algo == "ppo":
        extra = ["--num_generations", 2, "--per_device_batch_size", 2, "--ppo_minibatches", 1]
        extra += ["--ppo_epochs", 1]
    else:
        extra = ["--num_generations", 4, "--per_device_batch_size", 2]
    command = (
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", 2]
        + ["--num_machines", 1, "--mixed_precision", "no", "--dynamo_backend", "no"]
        + ["--main_process_port", 29500 + (os.getpid() % 1000) + (algo == "grpo"), "train.py"]
        + ["--algo", algo, "--model", warm_model, "--output_dir", out, "--tasks", TASK]
        + ["--max_steps", 2, "--learning_rate", 1e-3, "--save_steps", 0, "--seed", 0]
        + EPISODE_FLAGS
        + extra
    )
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(c) for c in command], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [json.loads((out / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["num_processes"] == 2 and r["global_step"] == 2 for r in ranks)
    assert ranks[0]["parameter_digest"] == ranks[1]["parameter_digest"]
    for rank in (0, 1):  # each rank played its own episodes
        assert read_jsonl(out / "rollouts" / f"rank{rank}.jsonl")
    assert_changed(warm_model, out)
