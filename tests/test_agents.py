"""The agents behind one protocol: oracle, random, a user's class, a local transformers model
(`hf:`) and an OpenAI-compatible server (`openai:`).

The transformers agent runs a tiny random Qwen3-architecture model built offline, and a copy
behaviour-cloned on the oracle's two turns of TASK (so that greedy decoding solves it: a real
tool call, executed by the env, then the answer). The endpoint agent talks to a real
`transformers serve` process on loopback serving that cloned model: nothing is mocked or
canned, the server's model writes every completion.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import envfactory_gym  # noqa: F401 - registers the envs
from envfactory_gym.agents import (
    EndpointAgent,
    EndpointError,
    HFAgent,
    OracleAgent,
    RandomAgent,
    make_agent,
)
from envfactory_gym.agents.endpoint import api_messages, text_messages
from envfactory_gym.agents.hf import resolve_model_path
from envfactory_gym.evaluation import run_episode
from tests.serving import free_port, transformers_serve

os.environ.setdefault("HF_HUB_OFFLINE", "1")

AIRLINE = "envfactory/Airline-v0"
TASK = "airline-gift_card_balance-00"
OTHER_TASK = "airline-cancel-00"
MAX_TURNS = 4


def _needs(*modules: str) -> pytest.MarkDecorator:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


needs_torch = _needs("torch", "transformers")
needs_server = _needs("torch", "transformers", "openai", "fastapi", "uvicorn")


# ------------------------------------------------------------------------------------ helpers
def oracle_turns(task_id: str = TASK) -> list[tuple[list[dict], list[dict], str]]:
    """The oracle's episode as (conversation so far, tools, action) per turn."""
    env = gym.make(AIRLINE)
    _, info = env.reset(options={"task_id": task_id})
    messages, tools = info["messages"], info["tools"]
    agent = OracleAgent()
    agent.reset(env.unwrapped.task)
    turns, done = [], False
    while not done:
        action = agent.act(messages, tools)
        turns.append(([dict(m) for m in messages], tools, action))
        _, _, terminated, truncated, info = env.step(action)
        messages.extend(info["new_messages"])
        done = terminated or truncated
    env.close()
    return turns


def play(agent: Any, task_id: str = TASK, seed: int = 0) -> tuple[dict, list[str]]:
    """`run_episode` with a recorder around `agent.act`; returns the record and the actions."""
    actions: list[str] = []
    act = agent.act

    def recording_act(messages, tools):
        actions.append(act(messages, tools))
        return actions[-1]

    agent.act = recording_act
    try:
        env = gym.make(AIRLINE, max_turns=MAX_TURNS)
        record = run_episode(env, agent, task_id, seed=seed)
        env.close()
    finally:
        del agent.act
    return record, actions


def tokenizer_of(model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model)


class CountingAgent:
    """A user's own agent class (loaded by import path): says it cannot help."""

    def reset(self, task) -> None:
        self.turns = 0

    def act(self, messages, tools) -> str:
        self.turns += 1
        return "I cannot help with that."


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from envfactory_gym.training.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", vocab_size=4096)


@pytest.fixture(scope="module")
def warm_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model taught the oracle's turns of TASK, each turn's prompt rendered as the
    agents render it (the whole conversation through the chat template, thinking off): the
    output head is untied from the embeddings and fitted to the frozen body's hidden states
    at the completion positions (seconds on a CPU, where training the body on ~5k-token
    prompts takes minutes). Greedy decoding then replays the oracle."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    features, targets = [], []
    with torch.no_grad():
        for messages, tools, action in oracle_turns():
            prompt = tokenizer.apply_chat_template(
                messages, tools=tools, add_generation_prompt=True, enable_thinking=False,
                tokenize=True, return_dict=False,
            )  # fmt: skip
            completion = tokenizer.encode(action, add_special_tokens=False)
            completion.append(tokenizer.eos_token_id)
            ids = torch.tensor([list(prompt) + completion[:-1]])
            features.append(model.model(input_ids=ids).last_hidden_state[0, len(prompt) - 1 :])
            targets += completion
    features, labels = torch.cat(features), torch.tensor(targets)
    head = torch.nn.Parameter(model.lm_head.weight.detach().clone())
    optimizer = torch.optim.Adam([head], lr=0.1)
    for _ in range(80):
        loss = torch.nn.functional.cross_entropy(features @ head.T, labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert (features @ head.T).argmax(-1).tolist() == targets
    model.config.tie_word_embeddings = False
    model.lm_head.weight = head
    out = tmp_path_factory.mktemp("warm") / "model"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(warm_model, tmp_path_factory) -> Iterator[str]:
    """`transformers serve` on loopback, serving the warm model; yields its /v1 URL."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    options = ("--dtype", "float32", "--default-seed", "0")
    with transformers_serve(warm_model, log_path, *options) as url:
        yield url


# ------------------------------------------------------------------------------------ specs
def test_agents_import_without_torch_or_openai():
    code = (
        "import sys, envfactory_gym.agents as a;"
        "a.make_agent('openai:m@http://127.0.0.1:1/v1'); a.make_agent('hf:Qwen/Qwen3-0.6B');"
        "print(sorted(m for m in ('torch', 'transformers', 'openai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_specs_build_each_agent_kind_with_options(tmp_path):
    assert isinstance(make_agent("oracle"), OracleAgent)
    assert isinstance(make_agent("random", seed=3), RandomAgent)
    assert isinstance(make_agent("tests.test_agents:CountingAgent"), CountingAgent)

    hf = make_agent("hf:Qwen/Qwen3-0.6B?thinking=1&temperature=0.7&max_new_tokens=64&seed=5")
    assert isinstance(hf, HFAgent) and hf.model is None  # weights load on the first turn
    assert (hf.thinking, hf.temperature, hf.max_new_tokens, hf.seed) == (True, 0.7, 64, 5)
    assert hf.chat_template_kwargs == {"enable_thinking": True}
    assert make_agent("hf:Qwen/Qwen3-0.6B").greedy

    agent = make_agent("openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1?tools=text&thinking=0")
    assert isinstance(agent, EndpointAgent)
    assert (agent.model, agent.base_url, agent.tool_mode) == (
        "Qwen/Qwen3-8B", "http://127.0.0.1:8000/v1", "text"
    )  # fmt: skip
    assert agent.extra_body == {"chat_template_kwargs": {"enable_thinking": False}}
    assert make_agent("openai:tiny@http://h:1/v1", temperature=0.5).temperature == 0.5

    for bad, words in [
        ("hf:", "give a model"),
        ("hf:x?temp=1", "unknown option 'temp'"),
        ("hf:x?thinking=maybe", "bad value 'maybe'"),
        ("openai:http://127.0.0.1:8000/v1", "openai:MODEL@URL"),
        ("openai:m@127.0.0.1:8000", "http://"),
        ("openai:m@http://h/v1?tools=json", "tool_mode"),
        ("gpt", "unknown agent"),
    ]:
        with pytest.raises(ValueError, match=words.replace("?", r"\?")):
            make_agent(bad)
    with pytest.raises(FileNotFoundError, match="no model folder"):
        make_agent(f"hf:{tmp_path}/missing")


def test_a_train_py_output_folder_resolves_to_its_model(tmp_path):
    run = tmp_path / "runs" / "grpo"
    for step in (5, 40, 10):
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "config.json").write_text("{}")
    assert resolve_model_path(run) == str(run / "checkpoint-40")
    (run / "adapter_config.json").write_text("{}")  # the final (LoRA) model, at the top
    assert resolve_model_path(run) == str(run)
    with pytest.raises(FileNotFoundError, match="no checkpoint-N"):
        resolve_model_path(tmp_path)


# ------------------------------------------------------------------------------ conformance
@pytest.mark.parametrize(
    "kind",
    [
        "oracle",
        "random",
        "class",
        pytest.param("hf", marks=needs_torch),
        pytest.param("openai-native", marks=needs_server),
        pytest.param("openai-text", marks=needs_server),
    ],
)
def test_every_agent_kind_plays_an_episode_through_the_protocol(kind, request):
    spec = {
        "oracle": "oracle",
        "random": "random",
        "class": "tests.test_agents:CountingAgent",
        "hf": "hf:{warm}?max_new_tokens=48",
        "openai-native": "openai:{warm}@{url}?max_tokens=48&thinking=0",
        "openai-text": "openai:{warm}@{url}?max_tokens=48&thinking=0&tools=text",
    }[kind]
    if "{warm}" in spec:
        warm = request.getfixturevalue("warm_model")
        url = request.getfixturevalue("server") if "{url}" in spec else ""
        spec = spec.format(warm=warm, url=url)
        renderer = HFAgent(warm)  # renders prompts as every agent here sends them
    agent = make_agent(spec)
    assert callable(agent.reset) and callable(agent.act)
    record, actions = play(agent)
    assert all(isinstance(a, str) for a in actions) and len(actions) == record["turns"]
    assert record["task_id"] == TASK and 0.0 <= record["reward"] <= 1.0
    if kind in ("oracle", "hf", "openai-native", "openai-text"):
        # the oracle, and the model cloned on it, whichever way it is served
        assert record["success"], (kind, actions)
        assert actions[0].startswith("<tool_call>") and actions[-1] == "150."
    if kind.startswith(("hf", "openai")):  # every turn's prompt and completion tokens
        prompts = [len(renderer.prompt_ids(m, t)) for m, t, _ in oracle_turns()]
        encode = renderer.tokenizer.encode
        completions = [len(encode(a, add_special_tokens=False)) + 1 for a in actions]  # + eos
        assert agent.last_episode_prompt_tokens == sum(prompts)
        assert agent.last_episode_completion_tokens == sum(completions)
        assert record["tokens"] == agent.last_episode_tokens == sum(prompts) + sum(completions)
    else:
        assert record["tokens"] is None


# ------------------------------------------------------------------------------- HFAgent
@needs_torch
def test_hf_sampling_repeats_for_a_seed_and_differs_across_seeds(tiny_model):
    agent = HFAgent(tiny_model, temperature=1.0, max_new_tokens=6, seed=0)
    (messages, tools, _), *_ = oracle_turns()

    def actions(seed: int | None, turns: int) -> list[str]:
        agent.reset(None, seed=seed)
        return [agent.act(messages, tools) for _ in range(turns)]

    seeded = actions(7, 2)
    assert seeded == actions(7, 2)
    assert seeded[0] != seeded[1]  # the turns of one episode draw differently
    assert seeded[0] != actions(8, 1)[0]


@needs_torch
def test_hf_act_batch_left_pads_several_episodes_into_one_generate(warm_model):
    agent = HFAgent(warm_model, max_new_tokens=40)
    first, second = oracle_turns(TASK)[0], oracle_turns(OTHER_TASK)[0]
    prompts = [agent.prompt_ids(first[0], first[1]), agent.prompt_ids(second[0], second[1])]
    assert len(prompts[0]) != len(prompts[1])  # so the shorter row is padded
    batch_sizes = []
    generate = agent._generate
    agent._generate = lambda ids: batch_sizes.append(len(ids)) or generate(ids)
    batch = agent.act_batch([first[0], second[0]], [first[1], second[1]])
    assert batch_sizes == [2]  # one generate call for both episodes
    assert batch[0] == first[2]  # the oracle's call, as the taught model learned it
    assert isinstance(batch[1], str)
    assert [n > len(p) for n, p in zip(agent.last_batch_tokens, prompts, strict=True)] == [1, 1]
    assert agent.turn == 0 and agent.last_episode_tokens == 0  # episodes are the caller's
    assert agent.act_batch([], []) == [] and agent.last_batch_tokens == []
    with pytest.raises(ValueError, match="2 conversations but 1 tool lists"):
        agent.act_batch([first[0], first[0]], [first[1]])


@needs_torch
def test_hf_thinking_switch_reaches_the_chat_template(tiny_model):
    (messages, tools, _), *_ = oracle_turns()
    off = HFAgent(tiny_model).prompt_ids(messages, tools)
    on = HFAgent(tiny_model, thinking=True).prompt_ids(messages, tools)
    tokenizer = tokenizer_of(tiny_model)
    assert tokenizer.decode(off[len(on) :]) == "<think>\n\n</think>\n\n" and off[: len(on)] == on


@_needs("torch", "transformers", "peft")
def test_hf_loads_a_lora_output_folder_merged_onto_its_base(tiny_model, tmp_path):
    """train.py with LoRA saves only the adapter (its base named in adapter_config.json)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    lora = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj"], task_type="CAUSAL_LM"))
    lora.save_pretrained(tmp_path / "runs" / "lora")  # the adapter only, no tokenizer
    agent = make_agent(f"hf:{tmp_path / 'runs' / 'lora'}?max_new_tokens=3")
    (messages, tools, _), *_ = oracle_turns()
    action = agent.act(messages, tools)
    assert type(agent.model).__name__ == "Qwen3ForCausalLM"  # merged, a plain model again
    assert action == HFAgent(tiny_model, max_new_tokens=3).act(messages, tools)  # B starts at 0


# ------------------------------------------------------------------------- EndpointAgent
def test_conversation_converts_to_the_api_and_to_text():
    turns = oracle_turns()
    messages, tools, _ = turns[-1]  # after a tool call and its result
    api = api_messages(messages)
    call = api[2]["tool_calls"][0]
    assert api[2]["content"] is None and isinstance(call["function"]["arguments"], str)
    assert (
        json.loads(call["function"]["arguments"])
        == messages[2]["tool_calls"][0]["function"]["arguments"]
    )
    assert api[3] == {
        "role": "tool",
        "tool_call_id": call["id"],
        "content": messages[3]["content"],
    }
    text = text_messages(messages, tools)
    assert [m["role"] for m in text] == ["system", "user", "assistant", "user"]
    assert "<tools>" in text[0]["content"] and text[0]["content"].startswith(messages[0]["content"])
    assert text[2]["content"] == turns[0][2]  # the call as the model wrote it
    assert text[3]["content"].startswith("<tool_response>\n")


@needs_torch
def test_text_mode_renders_what_native_tools_render_for_qwen3(tiny_model):
    """With the Qwen3 template, the text-mode conversation is token for token the prompt the
    server builds from `tools=` (so a Qwen3 model sees the same thing in either mode)."""
    tokenizer = tokenizer_of(tiny_model)
    messages, tools, _ = oracle_turns()[-1]
    native = tokenizer.apply_chat_template(
        messages, tools=tools, add_generation_prompt=True, tokenize=False
    )
    text = tokenizer.apply_chat_template(
        text_messages(messages, tools), add_generation_prompt=True, tokenize=False
    )
    assert text == native


def test_unreachable_server_error_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    agent = EndpointAgent("tiny", url, timeout=5, max_retries=0)
    agent.reset(None, seed=0)
    start = time.monotonic()
    with pytest.raises(EndpointError, match=f"cannot reach {url}/chat/completions"):
        agent.act([{"role": "user", "content": "hi"}], [])
    assert time.monotonic() - start < 5


@needs_server
def test_server_error_status_is_reported_with_the_url(server):
    agent = EndpointAgent("m", server, max_retries=0)
    with pytest.raises(EndpointError, match=f"{server}/chat/completions answered HTTP"):
        agent.act([{"role": "bogus", "content": "hi"}], [])
