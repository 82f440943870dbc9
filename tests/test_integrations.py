"""The adapters of `envfactory_gym.integrations`, each through its library's own API.

Each library's tests skip when it is not installed. TRL: the trainer's own constructor, prompt
tokenizer, response parser and env reward wrapper, and one `GRPOTrainer.train()` step. OpenEnv:
OpenEnv's FastAPI server on loopback and its `EnvClient`. SkyRL-Gym: `skyrl_gym.make` on rows
in SkyRL's dataset format. verifiers: its plugin loader and taskset views, and `Env.run_episode`
with verifiers' own harness and client against an oracle model served on loopback (needs `uv`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import envfactory_gym  # noqa: F401
from envfactory_gym.agents import OracleAgent
from envfactory_gym.tasks import Task

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

AIRLINE = "envfactory/Airline-v0"
TASKS = ["airline-flight_status-00", "airline-gift_card_balance-00"]
WRITE_TASK = "airline-add_bags-00"


def airline_task(task_id: str) -> Task:
    return gym.make(AIRLINE).unwrapped.package.task(task_id)


def oracle_texts(task: Task) -> list[str]:
    """The oracle's turns for `task`: one tool call per turn, then the answer."""
    agent = OracleAgent()
    agent.reset(task)
    return [agent.act([], []) for _ in range(len(task.calls) + 1)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------- TRL
@pytest.fixture(scope="module")
def trl_trainer(tmp_path_factory) -> Any:
    """A real `GRPOTrainer` built on `make(...).kwargs()` and the tiny Qwen3 (not trained)."""
    pytest.importorskip("trl")
    pytest.importorskip("datasets")
    from trl import GRPOConfig, GRPOTrainer

    from envfactory_gym.integrations import trl as ef_trl
    from envfactory_gym.training.tiny_model import build_tiny_model

    model = build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", vocab_size=4096)
    spec = ef_trl.make(AIRLINE, tasks=[*TASKS, WRITE_TASK])
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=16,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        chat_template_kwargs={"enable_thinking": False},
    )
    return GRPOTrainer(str(model), args=args, **spec.kwargs())


def prompt_ids(trainer: Any, prompt: list[dict[str, Any]]) -> list[int]:
    """The prompt's token ids as `GRPOTrainer` renders it (tools of the row's environment)."""
    trainer._batch_environments = [None]  # set per batch by _generate_and_score_completions
    (ids,), _, _ = trainer._tokenize_prompts([prompt])
    return list(ids)


def test_trl_tools_reach_the_chat_template_with_full_schemas(trl_trainer):
    from transformers.utils import get_json_schema

    env = gym.make(AIRLINE).unwrapped
    schemas = {s["function"]["name"]: s for s in env.tool_schemas}
    tools = trl_trainer._env_tools[None]
    assert sorted(t.__name__ for t in tools) == sorted(schemas)
    row = trl_trainer.train_dataset[0]
    text = trl_trainer.processing_class.decode(prompt_ids(trl_trainer, row["prompt"]))
    block = text.split("<tools>\n", 1)[1].split("\n</tools>", 1)[0]
    rendered = [json.loads(line) for line in block.splitlines()]
    assert {r["function"]["name"]: r for r in rendered} == schemas  # exact: nothing dropped
    assert '"maximum": 50' in block and '"enum": ["basic_economy"' in block and '"items"' in block
    # what transformers derives from a Python signature loses the bounds and nested items
    env_class = trl_trainer.environment_factories[None].env_class
    derived = get_json_schema(env_class.update_reservation_baggages.__get__(object()))
    assert "maximum" not in json.dumps(derived)


def test_trl_oracle_episode_through_trl_parser_tools_and_reward(trl_trainer):
    from trl.chat_template_utils import parse_response

    from envfactory_gym.integrations.trl import record_final_message

    tokenizer = trl_trainer.processing_class
    tools = trl_trainer._env_tools[None]
    for task_id in [*TASKS, WRITE_TASK]:
        env = trl_trainer.environment_factories[None]()
        row = next(r for r in trl_trainer.train_dataset if r["task_id"] == task_id)
        assert env.reset(**row) is None
        by_name = {t.__name__: getattr(env, t.__name__) for t in tools}  # as TRL builds it
        prefix = prompt_ids(trl_trainer, row["prompt"])
        *calls, answer = oracle_texts(env.episode.task)
        for text in calls:
            ids = tokenizer.encode(text) + [tokenizer.eos_token_id]
            (call,) = parse_response(tokenizer, ids, prefix=prefix, tools=tools)["tool_calls"]
            result = by_name[call["function"]["name"]](**call["function"]["arguments"])
            assert not result.startswith("Error"), result
        completion = [{"role": "assistant", "content": answer}]
        assert record_final_message([completion], environments=[env]) == [0.0]
        env_reward = trl_trainer.reward_funcs[-1]  # TRL's wrapper around get_reward
        assert trl_trainer.reward_func_names[-1] == type(env).__name__
        assert env_reward(environments=[env]) == [1.0], env.episode.last_reward


def test_trl_several_envs_route_by_the_environment_column():
    pytest.importorskip("datasets")
    from envfactory_gym.integrations import trl as ef_trl

    spec = ef_trl.make([AIRLINE, "envfactory/Retail-v0"])
    assert isinstance(spec.environment_factory, dict)
    rows = spec.train_dataset
    assert set(rows["environment"]) == {AIRLINE, "envfactory/Retail-v0"}
    for env_id in spec.environment_factory:
        row = next(r for r in rows if r["environment"] == env_id)
        env = spec.environment_factory[env_id]()
        # TRL drops `environment` from the row in multi-environment mode
        env.reset(**{k: v for k, v in row.items() if k != "environment"})
        assert env.episode.task.id == row["task_id"]


def test_trl_reset_is_deterministic_within_a_group(trl_trainer):
    factory = pickle.loads(pickle.dumps(trl_trainer.environment_factories[None]))  # async GRPO
    row = next(r for r in trl_trainer.train_dataset if r["task_id"] == WRITE_TASK)
    first, second = factory(), factory()
    assert type(first) is type(second) is trl_trainer.environment_factories[None].env_class
    first.reset(**row)
    pristine = first.episode.state_digest()
    *calls, _ = oracle_texts(first.episode.task)
    for text in calls:  # the write lands in `first` only
        call = json.loads(text.split("\n")[1])
        first._call_tool(call["name"], call["arguments"])
    assert first.episode.state_digest() != pristine
    second.reset(**row)
    first.reset(**row)  # the pooled instance is reused for the next group member
    assert first.episode.task.id == second.episode.task.id == WRITE_TASK
    assert first.episode.state_digest() == second.episode.state_digest() == pristine
    with pytest.raises(ValueError, match="task_id"):
        first.reset(prompt=row["prompt"])


def test_trl_grpo_step_with_environment_factory(trl_trainer):
    """One real `GRPOTrainer.train()` step: rollouts through TRL's tool loop, `reset` per row,
    `record_final_message` then `get_reward`, one task per group (the random model earns 0)."""
    trl_trainer.train()
    envs = trl_trainer.environments
    groups = [envs[i : i + 2] for i in range(0, len(envs), 2)]
    assert all(len({e.episode.task.id for e in group}) == 1 for group in groups)
    assert all(e._answered or e.episode.done for e in envs)
    assert any("rewards/AirlineTRLEnv/mean" in log for log in trl_trainer.state.log_history)


# ------------------------------------------------------------------------------------- OpenEnv
@pytest.fixture(scope="module")
def openenv_server() -> Iterator[str]:
    pytest.importorskip("openenv")
    uvicorn = pytest.importorskip("uvicorn")
    from envfactory_gym.integrations import openenv as ef_openenv

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            ef_openenv.create_app(AIRLINE), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_openenv_in_process_oracle_episodes():
    pytest.importorskip("openenv")
    from envfactory_gym.integrations import openenv as ef_openenv

    env = ef_openenv.make(AIRLINE)
    for task_id in [*TASKS, WRITE_TASK]:
        obs = env.reset(task_id=task_id)
        assert obs.task_id == task_id and obs.tools and not obs.done
        for text in oracle_texts(airline_task(task_id)):
            obs = env.step(ef_openenv.EnvfactoryAction(text=text))
        assert obs.done and obs.reward == 1.0 and obs.reward_breakdown["success"]
        assert env.state.task_id == task_id and env.state.done
    with pytest.raises(ValueError, match="unknown reset"):
        env.reset(task="x")


def test_openenv_server_and_client_oracle_episodes(openenv_server):
    from envfactory_gym.integrations.openenv import EnvfactoryAction, EnvfactoryClient

    async def episode(task_id: str) -> tuple[float | None, str]:
        async with EnvfactoryClient(base_url=openenv_server) as client:
            result = await client.reset(task_id=task_id)
            assert result.observation.tools and result.observation.task_id == task_id
            for text in oracle_texts(airline_task(task_id)):
                result = await client.step(EnvfactoryAction(text=text))
            state = await client.state()
            return result.reward, state.task_id

    async def concurrently() -> list[tuple[float | None, str]]:
        # one env (and database) per WebSocket session: interleaved episodes stay isolated
        ids = [*TASKS, WRITE_TASK, WRITE_TASK]
        return await asyncio.gather(*(episode(t) for t in ids))

    results = asyncio.run(concurrently())
    assert [r for r, _ in results] == [1.0] * 4
    assert [t for _, t in results] == [*TASKS, WRITE_TASK, WRITE_TASK]


# ---------------------------------------------------------------------------------- SkyRL-Gym
def test_skyrl_gym_make_and_dataset_rows_oracle_episodes():
    skyrl_gym = pytest.importorskip("skyrl_gym")
    from envfactory_gym.integrations import skyrl as ef_skyrl

    rows = ef_skyrl.dataset_rows(AIRLINE)
    assert rows and all(r["env_class"] == "envfactory" for r in rows)
    chosen = [r for r in rows if r["extra_info"]["task_id"] in [*TASKS, WRITE_TASK]]
    assert len(chosen) == 3
    for row in chosen:
        env = skyrl_gym.make(row["env_class"], env_config={}, extras=row)  # as SkyRL does
        prompt, meta = env.init(row["prompt"])
        assert prompt == row["prompt"] and meta["tools"]
        for text in oracle_texts(env.core.task):
            out = env.step(text)
            assert all(m["role"] in ("tool", "user") for m in out["observations"])
        assert out["done"] and out["reward"] == 1.0 and out["metadata"]["success"]
        assert env.get_metrics()["success"] == 1.0
        env.close()
    one = ef_skyrl.make(AIRLINE, task_id=TASKS[0])
    assert isinstance(one, skyrl_gym.Env) and one.init()[1]["task_id"] == TASKS[0]


# ---------------------------------------------------------------------------------- verifiers
class _Segment:
    def __init__(self, reply: str | None) -> None:
        self.terminated = reply is None
        self.last_reply = reply or ""


class _Trace:
    """Records what `EnvfactoryEnv.run` puts on a verifiers trace."""

    def __init__(self) -> None:
        self.rewards: dict[str, float] = {}
        self.metrics: dict[str, float] = {}

    def record_reward(self, name: str, value: float, weight: float = 1.0) -> None:
        self.rewards[name] = value

    def record_metric(self, name: str, value: float) -> None:
        self.metrics[name] = value


class _ScriptedInteraction:
    """Stands in for verifiers' model side: answers each turn with the oracle's next text."""

    def __init__(self, texts: list[str], trace: Any) -> None:
        self.texts, self.trace, self.received = list(texts), trace, []

    async def turn(self, message: str | None = None) -> _Segment:
        self.received.append(message)
        return _Segment(self.texts.pop(0) if self.texts else None)


def test_verifiers_taskset_plugin_and_run_oracle_episodes():
    pytest.importorskip("verifiers")
    from verifiers.v1.utils.loaders import environment_class, taskset_class

    from envfactory_gym.integrations import verifiers as ef_vf

    assert environment_class(ef_vf.TASKSET_ID) is ef_vf.EnvfactoryEnv  # verifiers' own loader
    assert taskset_class(ef_vf.TASKSET_ID) is ef_vf.EnvfactoryTaskset
    env = ef_vf.make(AIRLINE)
    tasks = list(env.taskset.include(ids=[*TASKS, WRITE_TASK]))
    assert [t.data.task_id for t in tasks] == [*TASKS, WRITE_TASK]
    schemas = gym.make(AIRLINE).unwrapped.tool_schemas
    system = tasks[0].data.system_prompt
    assert all(json.dumps(s, ensure_ascii=False) in system for s in schemas)
    for task in tasks:
        trace = _Trace()
        interaction = _ScriptedInteraction(oracle_texts(airline_task(task.data.task_id)), trace)

        @contextlib.asynccontextmanager
        async def open_interaction(_task: Any, interaction: Any = interaction) -> Any:
            yield interaction

        player = type("Player", (), {"interaction": staticmethod(open_interaction)})()
        agents = type("Agents", (), {"player": player})()
        asyncio.run(env.run(task, agents))
        assert trace.rewards == {"envfactory_reward": 1.0} and trace.metrics["success"] == 1.0
        assert interaction.received[0] is None  # the task's prompt opens the exchange
        assert "<tool_response>" in interaction.received[1]


def _oracle_chat_server() -> Any:
    """An OpenAI-compatible chat endpoint that answers as the oracle (streaming or not): the
    model behind verifiers' harness, offline."""
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    tasks = {t.instruction: t for t in gym.make(AIRLINE).unwrapped.package.tasks}
    app = FastAPI()

    async def chat(request: Request) -> Any:
        body = await request.json()
        messages = body["messages"]
        opening = next(m["content"] for m in messages if m["role"] == "user")
        texts = oracle_texts(tasks[opening])
        turn = sum(m["role"] == "assistant" for m in messages)
        text = texts[min(turn, len(texts) - 1)]
        head = {"id": f"oracle-{turn}", "created": 0, "model": body.get("model")}
        usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        if not body.get("stream"):
            message = {"role": "assistant", "content": text}
            choice = {"index": 0, "finish_reason": "stop", "message": message}
            return {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        chunk = {**head, "object": "chat.completion.chunk"}
        delta = {"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}
        end = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events = [{**chunk, "choices": [delta]}, {**chunk, "choices": [end], "usage": usage}]
        lines = [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]
        return StreamingResponse(iter(lines), media_type="text/event-stream")

    chat.__annotations__["request"] = Request  # a real class: annotations are strings here
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])
    return app


def test_verifiers_run_episode_with_its_harness_on_oracle_episodes(monkeypatch):
    """verifiers' own runner: `Env.run_episode` launches its `null` chat harness (a uv script in
    a subprocess) that calls the model through verifiers' interception and eval client; the
    model is the oracle behind a loopback OpenAI-compatible endpoint."""
    pytest.importorskip("verifiers")
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    import shutil

    if shutil.which("uv") is None:
        pytest.skip("verifiers' harness runs its chat program with uv, which is not installed")
    import verifiers.v1 as vf

    from envfactory_gym.integrations import verifiers as ef_vf

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(_oracle_chat_server(), host="127.0.0.1", port=port, log_level="warning")
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    monkeypatch.setenv("ORACLE_API_KEY", "unused")
    client = vf.EvalClientConfig(
        base_url=f"http://127.0.0.1:{port}/v1", api_key_var="ORACLE_API_KEY"
    )
    ctx = vf.ModelContext(model="oracle", client=client)
    env = ef_vf.make(AIRLINE)
    try:
        for task in env.taskset.include(ids=[WRITE_TASK]):
            episode = asyncio.run(env.run_episode(task, ctx))
            if any("uv script" in e.message for e in episode.errors):
                pytest.skip(f"uv could not prepare the harness program: {episode.errors[0]}")
            (trace,) = episode.traces
            assert episode.ok and trace.ok, (episode.errors, trace.errors)
            assert trace.rewards["envfactory_reward"].score == 1.0
            assert trace.metrics["success"] == 1.0
            assert len(trace.calls) == len(task_calls := airline_task(task.data.task_id).calls) + 1
            assert task_calls
    finally:
        server.should_exit = True


def test_integrations_package_imports_no_library():
    import subprocess
    import sys

    code = (
        "import sys, envfactory_gym.integrations; "
        "print(sorted(m for m in ('trl', 'openenv', 'verifiers', 'skyrl_gym', 'datasets') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).parent,
    )  # fmt: skip
    assert out.stdout.strip() == "[]"
