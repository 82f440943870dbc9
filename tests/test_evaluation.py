"""`envfactory eval`: pass^k as tau-bench defines it, failure categories, reports, resuming."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest

import envfactory_gym  # noqa: F401
from envfactory_gym.actions import format_tool_call
from envfactory_gym.agents import OracleAgent, make_agent
from envfactory_gym.checker import oracle_answer
from envfactory_gym.evaluation import pass_hat_k, read_episodes, run_episode, run_evaluation

ROOT = Path(__file__).resolve().parent.parent


class Scripted:
    """Plays a fixed list of actions, then a last word."""

    def __init__(self, actions: list[str]) -> None:
        self.actions = actions

    def reset(self, task) -> None:
        self.queue = list(self.actions)

    def act(self, messages, tools) -> str:
        return self.queue.pop(0) if self.queue else "Is there anything else?"


def test_pass_hat_k_is_the_chance_that_k_trials_all_succeed() -> None:
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(2, 4, 1) == 0.5
    assert pass_hat_k(2, 4, 2) == pytest.approx(1 / 6)  # C(2,2)/C(4,2)
    assert pass_hat_k(3, 4, 4) == 0.0
    with pytest.raises(ValueError, match="needs at least 3 trials"):
        pass_hat_k(1, 2, 3)


def _failure(task_id: str, actions) -> str | None:
    env = gym.make("envfactory/Airline-v0")
    task = env.unwrapped.package.task(task_id)
    record = run_episode(env, Scripted(actions(task)), task_id)
    return record["failure"]


def truth(task) -> list[str]:
    return [format_tool_call(c.name, c.arguments) for c in task.calls]


def test_each_failure_names_what_went_wrong() -> None:
    assert _failure("airline-cancel-00", lambda t: [*truth(t), oracle_answer(t.outputs)]) is None
    assert _failure("airline-cancel-00", lambda t: ["Done, all cancelled."]) == "gave up"
    assert _failure("airline-cancel-00", lambda t: ['<tool_call>{"name": </tool_call>']) == (
        "malformed call"
    )
    assert _failure("airline-flight_status-00", lambda t: [*truth(t), "It is fine."]) == (
        "wrong answer"
    )
    cancel = json.loads(truth(envfactory_gym.load_package("airline").task("airline-cancel-00"))[-1]
                        .split(">", 1)[1].rsplit("<", 1)[0])  # fmt: skip
    refusal = [t for t in envfactory_gym.load_package("airline").tasks
               if t.id.startswith("airline-cancel_refused")][0]  # fmt: skip
    reservation = next(c.arguments["reservation_id"] for c in refusal.calls
                       if "reservation_id" in c.arguments)  # fmt: skip
    assert cancel["name"] == "cancel_reservation"
    assert _failure(refusal.id, lambda t: [
        *truth(t), format_tool_call("cancel_reservation", {"reservation_id": reservation}),
        "Cancelled."]) == "policy violation"  # fmt: skip


def test_a_run_writes_json_markdown_and_plots_with_pass_k(tmp_path: Path) -> None:
    envs = ["envfactory/Airline-v0", "envfactory/Retail-v0"]
    report = run_evaluation(envs, OracleAgent, tmp_path, agent_name="oracle", split="test",
                            trials=3, workers=2, progress=False)  # fmt: skip
    assert report["overall"]["pass^k"]["3"]["value"] == 1.0
    assert report["overall"]["pass^k"]["1"]["ci95"] == [1.0, 1.0]
    assert set(report["envs"]) == set(envs) and set(report["domains"]) == {"travel", "commerce"}
    assert json.loads((tmp_path / "report.json").read_text())["overall"] == report["overall"]
    assert "| **all** |" in (tmp_path / "report.md").read_text()
    for png in ("success_by_env.png", "pass_k.png", "failures.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    episodes = read_episodes(tmp_path / "episodes.jsonl")
    assert len(episodes) == 3 * sum(r["tasks"] for r in report["envs"].values())


def test_random_agent_reports_failures_by_category(tmp_path: Path) -> None:
    report = run_evaluation(["envfactory/Airline-v0"], lambda: make_agent("random", seed=3),
                            tmp_path, split="test", progress=False)  # fmt: skip
    overall = report["overall"]
    assert overall["pass@1"] < 0.1
    assert sum(overall["failures"].values()) == overall["episodes"] - round(
        overall["pass@1"] * overall["episodes"]
    )
    assert 0.0 <= overall["tool_call_validity"] < 1.0


def test_a_killed_run_resumes_without_losing_or_redoing_episodes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    command = [sys.executable, "-m", "envfactory_gym.cli", "eval", "--env", "envfactory/Airline-v0",
               "--agent", "tests.slow_agent:SlowOracle", "--split", "all", "--trials", "2",
               "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.DEVNULL)
    journal = out / "episodes.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(read_episodes(journal)) < 20:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = journal.read_text().splitlines()
    assert 20 <= len(before) < 158, "the run was killed half way"
    with journal.open("a") as handle:
        handle.write('{"env": "envfactory/Airline-v0", "task_id": "airl')  # a line cut by the kill
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    episodes = read_episodes(journal)
    keys = [(e["task_id"], e["trial"]) for e in episodes]
    assert len(keys) == len(set(keys)) == 2 * 79
    assert journal.read_text().splitlines()[: len(before)] == before  # nothing rewritten
    assert json.loads((out / "report.json").read_text())["overall"]["pass^k"]["2"]["value"] == 1.0


def test_an_llm_user_plays_the_user_side_of_every_episode(tmp_path: Path) -> None:
    from envfactory_gym.users import LLMUser, llm_user_from_spec

    user = llm_user_from_spec("openai:tiny@http://127.0.0.1:9/v1?temperature=0.5&thinking=0")
    assert (user.chat.model, user.chat.temperature) == ("tiny", 0.5)
    assert user.chat.extra_body == {"chat_template_kwargs": {"enable_thinking": False}}
    with pytest.raises(ValueError, match="unknown option 'colour'"):
        llm_user_from_spec("openai:tiny@http://127.0.0.1:9/v1?colour=red")
    with pytest.raises(ValueError, match="bad value 'maybe' for option 'thinking'"):
        llm_user_from_spec("openai:tiny@http://127.0.0.1:9/v1?thinking=maybe")
    with pytest.raises(ValueError, match="expected scripted, or openai:MODEL@URL"):
        llm_user_from_spec("openai:http://127.0.0.1:9/v1")
    asked: list[str] = []

    def chat(messages, seed) -> str:  # the content is canned; the episodes are real
        asked.append(messages[-1]["content"])
        return "###STOP###"

    class AsksFirst(OracleAgent):
        def act(self, messages, tools) -> str:
            return (
                "Could you confirm your name?"
                if len(messages) == 2
                else super().act(messages, tools)
            )

    def user() -> LLMUser:
        return LLMUser(chat, model="canned", cache_dir="off")

    report = run_evaluation(["envfactory/Airline-v0"], AsksFirst, tmp_path, split="test",
                            progress=False, user_factory=user)  # fmt: skip
    assert len(asked) == report["overall"]["episodes"] and set(asked) == {
        "Could you confirm your name?"
    }
    assert report["overall"]["pass@1"] == 0.0  # the user hung up before the agent did anything
