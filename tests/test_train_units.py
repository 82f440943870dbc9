"""Fast checks of the training pieces: tiny model, chat formatting, rollouts, sampling.

The config and the CLI are tested in test_train_config.py.
"""

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("torch")
pytest.importorskip("trl")

import gymnasium as gym  # noqa: E402

import envfactory_gym  # noqa: E402,F401
from envfactory_gym.training.data import (  # noqa: E402
    Curriculum,
    PromptIndex,
    TaskRef,
    TaskSampler,
    list_tasks,
    mixture_weights,
    prompt_rows,
    resolve_envs,
)
from envfactory_gym.training.rollout import ChatFormatter, RolloutRunner, summarize  # noqa: E402
from envfactory_gym.training.tiny_model import (  # noqa: E402
    build_tokenizer,
    qwen3_chat_template,
)

AIRLINE = "envfactory/Airline-v0"
TASK = "airline-gift_card_balance-00"


@pytest.fixture(scope="module")
def tokenizer():
    tok = build_tokenizer(vocab_size=4096)
    tok.padding_side = "left"
    return tok


# ---------------------------------------------------------------------- tokenizer, template
def test_tiny_tokenizer_is_real_qwen3_with_trl_recognized_template(tokenizer):
    from trl.chat_template_utils import add_response_schema

    assert tokenizer.chat_template == qwen3_chat_template()
    add_response_schema(tokenizer)  # raises for a template TRL does not recognize
    for token in ("<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_response>", "<think>"):
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    full = build_tokenizer()
    assert len(full) == 151669  # the untruncated Qwen3 vocabulary
    text = "Hello, my user id is yuki_hughes_4942."
    assert full.decode(full.encode(text)) == text == tokenizer.decode(tokenizer.encode(text))


def test_suffix_ids_render_env_turns_after_the_assistant_eos(tokenizer):
    formatter = ChatFormatter(tokenizer, {"enable_thinking": False})
    tool = formatter.suffix_ids([{"role": "tool", "name": "f", "content": "RESULT"}])
    text = tokenizer.decode(tool)
    assert text == (
        "\n<|im_start|>user\n<tool_response>\nRESULT\n</tool_response><|im_end|>\n"
        "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    )
    user = tokenizer.decode(formatter.suffix_ids([{"role": "user", "content": "My id is 7."}]))
    assert user.startswith("\n<|im_start|>user\nMy id is 7.<|im_end|>\n<|im_start|>assistant\n")


# --------------------------------------------------------------------------------- rollouts
def _scripted(tokenizer, texts):
    """A policy that says `texts` in order (each turn closed by the eos token)."""
    queue = list(texts)

    def generate(prompt_ids):
        out = []
        for _ in prompt_ids:
            ids = tokenizer.encode(queue.pop(0), add_special_tokens=False)
            out.append(ids + [tokenizer.eos_token_id])
        return out, None

    return generate


def test_rollout_mask_is_exactly_the_policy_tokens_and_matches_sft_rendering(tokenizer):
    from trl.chat_template_utils import get_training_chat_template

    env = gym.make(AIRLINE)
    task = env.unwrapped.package.task(TASK)
    user_id = task.user_facts["user_id"]
    call = json.dumps({"name": "get_user_details", "arguments": {"user_id": user_id}})
    texts = [
        "Could you tell me your user id?",
        f"<tool_call>\n{call}\n</tool_call>",
        f"All done. Here is what you asked for: {task.outputs[0]}.",
    ]
    runner = RolloutRunner(
        tokenizer,
        max_turns=10,
        max_new_tokens=64,
        max_episode_tokens=4096,
        chat_template_kwargs={"enable_thinking": False},
    )
    (episode,) = runner.run([(AIRLINE, TASK)], _scripted(tokenizer, texts))

    assert episode.terminated and episode.turns == 3
    assert episode.user_turns == 1 and episode.tool_calls == 1
    assert episode.success and episode.reward == pytest.approx(1.0)
    assert episode.actions == texts
    policy = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if m]
    env_part = [t for t, m in zip(episode.completion_ids, episode.mask, strict=True) if not m]
    assert tokenizer.decode(policy) == "<|im_end|>".join(texts) + "<|im_end|>"
    env_text = tokenizer.decode(env_part)
    assert f"My user id is {user_id}." in env_text and "<tool_response>" in env_text
    assert "<tool_response>" not in tokenizer.decode(policy)
    assert user_id not in tokenizer.decode(policy[: len(tokenizer.encode(texts[0]))])

    # The token stream is the env's own message log rendered by TRL's Qwen3 training template
    # (the one SFT uses), so RL and SFT see identical sequences.
    replay = gym.make(AIRLINE)
    _, info = replay.reset(options={"task_id": TASK})
    tools = info["tools"]
    for text in texts:
        _, reward, terminated, _, info = replay.step(text)
    assert reward == episode.reward and info["reward_breakdown"] == episode.breakdown
    rendered = tokenizer.apply_chat_template(
        info["messages"],
        tools=tools,
        chat_template=get_training_chat_template(tokenizer),
        tokenize=True,
        return_dict=False,
    )
    stream = episode.prompt_ids + episode.completion_ids
    assert rendered[: len(stream)] == stream
    assert tokenizer.decode(rendered[len(stream) :]) == "\n"


def test_rollout_closes_cut_turns_and_respects_the_token_budget(tokenizer):
    def babble(prompt_ids):  # never emits eos: every turn is cut at max_new_tokens
        return [
            tokenizer.encode(" what?" * 4, add_special_tokens=False)[:8] for _ in prompt_ids
        ], None

    runner = RolloutRunner(tokenizer, max_turns=30, max_new_tokens=8, max_episode_tokens=60)
    episodes = runner.run([(AIRLINE, TASK), (AIRLINE, TASK)], babble)
    for episode in episodes:
        assert episode.done and episode.truncated and episode.out_of_budget
        assert len(episode.completion_ids) <= 60
        ids, mask = episode.completion_ids, episode.mask
        cut_ends = [
            i
            for i in range(1, len(ids))
            if ids[i] == tokenizer.eos_token_id and mask[i] == 0 and mask[i - 1] == 1
        ]
        assert len(cut_ends) == episode.turns  # each cut turn closed by an eos outside the mask
    stats = summarize(episodes)
    assert stats["out_of_budget"] == 1.0 and stats["env/Airline-v0/reward"] == 0.0
    assert stats["user_turns"] >= 1 and 0.0 <= stats["time/env_fraction"] <= 1.0


# ---------------------------------------------------------------------- tasks and sampling
def test_resolve_envs_and_task_lists():
    assert resolve_envs(["airline"]) == [AIRLINE] == resolve_envs(["envfactory/Air*"])
    with pytest.raises(ValueError):
        resolve_envs(["nope"])
    train = list_tasks([AIRLINE], "train", ["airline-gift_card_balance-*"])
    assert train and all(t.split == "train" and t.n_calls >= 1 for t in train)
    test = list_tasks([AIRLINE], "test")
    assert {t.task_id for t in test}.isdisjoint({t.task_id for t in list_tasks([AIRLINE], "train")})
    assert mixture_weights(["a", "b"], [1, 3]) == {"a": 0.25, "b": 0.75}
    with pytest.raises(ValueError):
        mixture_weights(["a"], [1, 2])


def test_prompt_index_maps_prompts_back_to_tasks():
    tasks = list_tasks([AIRLINE], "train")[:5]
    index = PromptIndex()
    rows = prompt_rows(tasks, index)
    for row, ref in zip(rows, tasks, strict=True):
        assert row["prompt"][0]["role"] == "system" and row["prompt"][1]["role"] == "user"
        assert index.lookup(row["prompt"]) == (AIRLINE, ref.task_id)
    with pytest.raises(KeyError):
        index.lookup([{"role": "system", "content": "?"}, {"role": "user", "content": "?"}])


def _refs():
    return [
        TaskRef("e/A-v0", "a1", "train", "read", 1, 0),
        TaskRef("e/A-v0", "a2", "train", "write", 3, 1),
        TaskRef("e/B-v0", "b1", "train", "read", 1, 0),
        TaskRef("e/B-v0", "b2", "train", "read", 2, 0),
    ]


def test_task_sampler_groups_mixture_and_determinism():
    refs = _refs()
    kwargs = dict(mini_repeat_count=3, batch_size=2, repeat_count=2, seed=5)
    first = list(TaskSampler(refs, {"e/A-v0": 0.0, "e/B-v0": 1.0}, **kwargs))
    assert len(first) == 2 * 2 * 2 * 3
    assert {refs[i].env_id for i in first} == {"e/B-v0"}  # weight 0 excludes env A
    for start in range(0, len(first), 3):  # each group is one task, repeated
        assert len(set(first[start : start + 3])) == 1
    chunk = first[:6]
    assert first[6:12] == chunk  # repeat_count: the same tasks again for the next step
    again = list(TaskSampler(refs, {"e/A-v0": 0.0, "e/B-v0": 1.0}, **kwargs))
    assert again == first


def test_curriculum_unlocks_harder_tasks_when_successful():
    refs = _refs()
    curriculum = Curriculum(refs, threshold=0.5, window=4)
    sampler = TaskSampler(
        refs,
        {"e/A-v0": 0.5, "e/B-v0": 0.5},
        mini_repeat_count=1,
        batch_size=1,
        curriculum=curriculum,
    )
    assert {refs[sampler.draw()].difficulty for _ in range(50)} == {(1, 0)}
    assert not curriculum.update([((1, 0), False)] * 4)
    assert curriculum.update([((1, 0), True)] * 4) and curriculum.max_difficulty == (2, 0)
    assert {refs[sampler.draw()].task_id for _ in range(200)} == {"a1", "b1", "b2"}
    curriculum.update([((2, 0), True)] * 4)
    assert curriculum.max_difficulty == (3, 1)
    assert not curriculum.update([((3, 1), True)] * 4)  # already at the top level
