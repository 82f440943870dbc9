"""Ray: `envfactory eval --ray` gives the local path's episodes and report (and resumes), and the
Ray env pools step batches exactly like the local ones. One local Ray with 2 CPUs for the file."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import envfactory_gym  # noqa: E402
from envfactory_gym import cli  # noqa: E402
from envfactory_gym.actions import format_tool_call  # noqa: E402
from envfactory_gym.agents import OracleAgent  # noqa: E402
from envfactory_gym.agents.random_agent import RandomAgent  # noqa: E402
from envfactory_gym.distributed import (  # noqa: E402
    RayEnvPool,
    RayEnvSlots,
    check_reachable,
    connect,
    play_on_ray,
)
from envfactory_gym.evaluation import read_episodes, run_evaluation  # noqa: E402
from envfactory_gym.training.rollout import LocalEnvSlots  # noqa: E402
from envfactory_gym.vector import EnvPool  # noqa: E402

AIRLINE, RETAIL = "envfactory/Airline-v0", "envfactory/Retail-v0"
VOLATILE = ("seconds",)  # wall time: the one field of a record that may differ between runs


class SeededRandomAgent(RandomAgent):
    """The random agent, its generator reseeded from each episode's seed: an episode's actions
    then do not depend on which worker plays it or what that worker played before. (The plain
    RandomAgent keeps one generator across episodes, so its episodes depend on the schedule:
    any `workers > 1`, local or Ray, plays different ones than one process.)"""

    def reset(self, task, seed: int = 0) -> None:  # noqa: ANN001
        self.rng = random.Random(seed)
        super().reset(task)


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    # the workers cannot import this test module: ship its classes by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _episodes(records: list[dict]) -> dict[tuple, dict]:
    return {(r["env"], r["task_id"], r["trial"]): {k: v for k, v in r.items() if k not in VOLATILE}
            for r in records}  # fmt: skip


def _numbers(report: dict) -> dict:
    return {key: report[key] for key in ("overall", "domains", "envs", "trials", "seed")}


def test_oracle_over_ray_gives_the_local_report(tmp_path: Path) -> None:
    local = run_evaluation([AIRLINE], OracleAgent, tmp_path / "local", agent_name="oracle",
                           trials=2, progress=False)  # fmt: skip
    remote = run_evaluation([AIRLINE], OracleAgent, tmp_path / "ray", agent_name="oracle",
                            trials=2, workers=2, progress=False, ray=True)  # fmt: skip
    assert remote["overall"]["pass^k"]["2"]["value"] == 1.0 == remote["overall"]["pass@1"]
    assert remote["overall"]["episodes"] == 2 * remote["overall"]["tasks"] > 0
    assert _numbers(remote) == _numbers(local)
    assert (tmp_path / "ray" / "report.md").read_text() == (tmp_path / "local" / "report.md"
                                                              ).read_text()  # fmt: skip


def test_random_agent_over_ray_plays_the_same_seeded_episodes(tmp_path: Path) -> None:
    factory = SeededRandomAgent
    envs = [AIRLINE, RETAIL]
    local = run_evaluation(envs, factory, tmp_path / "local", agent_name="random", seed=3,
                           progress=False)  # fmt: skip
    remote = run_evaluation(envs, factory, tmp_path / "ray", agent_name="random", seed=3,
                            workers=2, progress=False, ray=True)  # fmt: skip
    mine = _episodes(read_episodes(tmp_path / "ray" / "episodes.jsonl"))
    theirs = _episodes(read_episodes(tmp_path / "local" / "episodes.jsonl"))
    assert mine == theirs and len(mine) == remote["overall"]["episodes"]
    assert {r["reward"] for r in mine.values()} != {1.0}  # a real test: not all the same
    assert _numbers(remote) == _numbers(local)


def test_resume_over_ray_plays_only_the_missing_episodes(tmp_path: Path) -> None:
    full = run_evaluation([AIRLINE], OracleAgent, tmp_path / "full", progress=False)
    records = read_episodes(tmp_path / "full" / "episodes.jsonl")
    out = tmp_path / "resumed"
    out.mkdir()
    kept = [r | {"seconds": -1.0} for r in records[:5]]  # marked: replaying would overwrite it
    lines = [json.dumps(r) for r in kept]
    (out / "episodes.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:20])  # a cut line
    # the CLI path, in this process: Ray is up already, so it joins it
    assert cli.main(["eval", "--env", AIRLINE, "--ray", "--workers", "2", "--out", str(out)]) == 0
    after = read_episodes(out / "episodes.jsonl")
    played = [r for r in after if r["seconds"] != -1.0]
    assert len(after) == len(records) and len(played) == len(records) - 5
    assert _episodes(after) == _episodes(records)
    report = json.loads((out / "report.json").read_text())
    assert _numbers(report) == _numbers(full)


def test_ray_play_streams_every_job_and_unreachable_addresses_are_named() -> None:
    jobs = [(AIRLINE, "airline-cancel-00", trial, trial) for trial in range(5)]
    records = list(play_on_ray(jobs, OracleAgent, workers=2, chunk_size=1))
    assert sorted(r["trial"] for r in records) == list(range(5))
    assert all(r["success"] for r in records)
    assert connect("127.0.0.1:1") is False  # Ray is up: nothing to do, whatever the address
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1"):
        check_reachable("127.0.0.1:1", timeout=2)
    with pytest.raises(ValueError, match="not a Ray address"):
        check_reachable("host:port")


def _script(task_id: str) -> list[str]:
    package = task_id.split("-")[0]  # airline-cancel-01 -> airline
    task = envfactory_gym.load_package(package).task(task_id)
    calls = [format_tool_call(c.name, c.arguments) for c in task.calls]
    return calls + ["Done: " + "; ".join(task.outputs)]


def test_ray_env_pool_steps_a_batch_like_the_local_pool() -> None:
    local = EnvPool(3, package="airline")
    remote = RayEnvPool(3, num_workers=2, package="airline")
    assert remote.num_workers == 2 and remote._sizes == [2, 1]
    for pool_seed, task_id in ((0, "airline-add_bags-00"), (7, "airline-cancel-01")):
        options = {"task_id": task_id}
        results = [pool.reset(seed=pool_seed, options=options) for pool in (local, remote)]
        assert results[0][0] == results[1][0]
        assert list(results[1][1]["task_id"]) == [task_id] * 3
        for action in _script(task_id):
            a, b = (pool.step([action] * 3) for pool in (local, remote))
            assert a[0] == b[0] and (a[1] == b[1]).all() and (a[2] == b[2]).all()
            assert sorted(a[4]) == sorted(b[4])
            assert list(a[4]["new_messages"]) == list(b[4]["new_messages"])
        assert b[1].tolist() == [1.0] * 3 and b[2].all() and b[4]["success"].all()
    # seeded resets without a task, then next-step autoreset, match too
    seen = [pool.reset(seed=[3, 4, 5])[0] for pool in (local, remote)]
    assert seen[0] == seen[1]
    for actions in (["Goodbye.", "Your user id?", "Bye."], ["ignored", "Bye.", "ignored"]):
        a, b = (pool.step(actions) for pool in (local, remote))
        assert a[0] == b[0] and a[1].tolist() == b[1].tolist() and a[2].tolist() == b[2].tolist()
    with pytest.raises(ValueError, match="expected 3 actions"):
        remote.step(["one"])
    local.close()
    remote.close()


def test_ray_env_slots_match_the_local_slots_episode_for_episode() -> None:
    make = {"max_turns": 12, "reward_config": {}, "disable_env_checker": True}
    requests = [(AIRLINE, "airline-add_bags-00"), (RETAIL, "retail-tracking_number-00"),
                (AIRLINE, "airline-cancel-01"), (AIRLINE, "airline-add_bags-00")]  # fmt: skip
    scripts = [_script(task_id) for _, task_id in requests]
    local, remote = LocalEnvSlots(make), RayEnvSlots(make, num_workers=2)
    for tau in (None, 0.3):  # twice: slots are reused, and tau reaches the remote envs
        infos = [slots.reset(requests, tau) for slots in (local, remote)]
        assert [i["messages"] for i in infos[0]] == [i["messages"] for i in infos[1]]
        assert local.score([0, 1]) == remote.score([0, 1])  # a fresh episode, scored as is
        final = {}
        for turn in range(max(map(len, scripts))):
            active = [i for i, script in enumerate(scripts) if turn < len(script)]
            actions = [scripts[i][turn] for i in active]
            a, b = (slots.step(active, actions) for slots in (local, remote))
            assert [t[:4] for t in a] == [t[:4] for t in b]
            assert [t[4]["new_messages"] for t in a] == [t[4]["new_messages"] for t in b]
            final.update({i: t for i, t in zip(active, b, strict=True) if t[2] or t[3]})
        assert sorted(final) == [0, 1, 2, 3]
        assert all(t[1] == 1.0 for t in final.values())
        assert {t[4]["reward_breakdown"]["tau"] for t in final.values()} == {tau or 0.5}
    remote.close()
    local.close()


def _scripted_policy(tokenizer, scripts: list[list[str]]):  # noqa: ANN001, ANN202
    """Says each episode's script in order; an episode is told apart by its prompt."""
    prompts: list[list[int]] = []
    queues = [list(script) for script in scripts]

    def generate(inputs: list[list[int]]) -> tuple[list[list[int]], None]:
        if not prompts:
            prompts.extend(inputs)
        out = []
        for ids in inputs:
            episode = next(i for i, p in enumerate(prompts) if ids[: len(p)] == p)
            text = queues[episode].pop(0) if queues[episode] else "Bye."
            out.append(tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id])
        return out, None

    return generate


@pytest.mark.parametrize("budget", [4096, 700])  # 700: episodes cut short, scored remotely
def test_train_rollouts_with_env_workers_ray_match_local_ones(budget: int) -> None:
    pytest.importorskip("transformers")
    from envfactory_gym.training.common import make_runner
    from envfactory_gym.training.config import TrainConfig
    from envfactory_gym.training.tiny_model import build_tokenizer

    tokenizer = build_tokenizer(vocab_size=4096)
    requests = [(AIRLINE, "airline-add_bags-00"), (RETAIL, "retail-tracking_number-00"),
                (AIRLINE, "airline-cancel-01")]  # fmt: skip
    scripts = [_script(task_id) for _, task_id in requests]
    episodes = {}
    for workers in ("local", "ray"):
        config = TrainConfig(env_workers=workers, ray_env_actors=2, max_turns=10,
                             max_new_tokens=64, max_episode_tokens=budget)  # fmt: skip
        runner = make_runner(config, tokenizer)
        assert type(runner.envs).__name__ == ("RayEnvSlots" if workers == "ray" else
                                              "LocalEnvSlots")  # fmt: skip
        episodes[workers] = runner.run(requests, _scripted_policy(tokenizer, scripts), tau=0.4)
        runner.close()
    local, remote = episodes["local"], episodes["ray"]
    assert [e.record() for e in remote] == [e.record() for e in local]
    assert [(e.completion_ids, e.mask) for e in remote] == [(e.completion_ids, e.mask)
                                                            for e in local]  # fmt: skip
    assert any(e.out_of_budget for e in remote) == (budget == 700)
    if budget == 4096:
        assert all(e.success for e in remote)
