"""`EnvPool`: many envs stepped in batches, in-process or over workers, with Gymnasium's
next-step autoreset and clean resets with options."""

import os
import signal

import gymnasium as gym
import numpy as np
import pytest

import envfactory_gym
from envfactory_gym.actions import format_tool_call
from envfactory_gym.vector import EnvPool, merge_infos
from tests.conftest import ENV_ID


def script(task_id):
    task = envfactory_gym.load_package("airline").task(task_id)
    return [format_tool_call(c.name, c.arguments) for c in task.calls] + [
        "Done: " + "; ".join(task.outputs)
    ]


@pytest.mark.parametrize("workers,step_here", [(0, True), (1, True), (2, False)])
def test_pool_plays_every_episode_like_a_plain_env(workers, step_here):
    envs = gym.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point",
                        num_workers=workers, step_here=step_here)  # fmt: skip
    assert isinstance(envs, EnvPool) and envs.metadata["autoreset_mode"].name == "NEXT_STEP"
    single = gym.make(ENV_ID)
    for task_id in ("airline-add_bags-00", "airline-cancel-01", "airline-book-02"):
        actions = script(task_id)
        expected = [single.reset(options={"task_id": task_id})[0]]
        expected += [single.step(a)[0] for a in actions]
        obs, info = envs.reset(options={"task_id": task_id})
        assert list(info["task_id"]) == [task_id] * 3 and len(info["tools"][0]) > 5
        tools = info["tools"]  # every env's own copy, wherever it was stepped
        assert tools[0] == tools[1] == tools[2] and tools[0] is not tools[2]
        seen = [obs]
        for action in actions:
            obs, rewards, terminated, truncated, info = envs.step([action] * 3)
            seen.append(obs)
        assert rewards.tolist() == [1.0] * 3 and terminated.all() and not truncated.any()
        assert seen == [(o, o, o) for o in expected]
        assert info["success"].all() and info["_reward_breakdown"].all()
    envs.close()


@pytest.mark.parametrize("workers", [0, 1])
def test_next_step_autoreset_and_per_env_seeds(workers):
    envs = EnvPool(2, num_workers=workers, package="airline")
    first, _ = envs.reset(seed=[3, 4])
    again, _ = envs.reset(seed=[3, 4])
    assert first == again
    _, rewards, terminated, _, _ = envs.step(["Goodbye.", "Could you tell me your user id?"])
    assert terminated.tolist() == [True, False]
    obs, rewards, terminated, _, info = envs.step(["ignored: the episode is over", "Bye."])
    assert rewards[0] == 0.0 and not terminated[0] and info["_messages"][0]  # reset, not stepped
    assert terminated[1]
    envs.close()


def test_pool_errors_name_the_problem_and_leave_the_pool_usable():
    envs = EnvPool(2, num_workers=1, package="airline")  # env 0 here, env 1 in the worker
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="expected 2 actions"):
        envs.step(["one"])
    with pytest.raises(TypeError, match="raw text"):
        envs.step(["fine", {"not": "text"}])  # raised in the worker, re-raised here
    envs.reset(seed=0)
    with pytest.raises(TypeError, match="raw text"):
        envs.step([{"not": "text"}, "fine"])  # raised here, after the worker answered
    task_id = "airline-cancel-01"
    envs.reset(options={"task_id": task_id})
    obs, *_ = envs.step(["What is your user id?"] * 2)
    assert obs[0] == obs[1] and "user" in obs[0].lower()  # each env answers its own step
    envs.close()
    with pytest.raises(ValueError, match="num_envs"):
        EnvPool(0, package="airline")


def test_a_step_interrupted_here_leaves_the_next_call_reading_its_own_replies(monkeypatch):
    envs = EnvPool(2, num_workers=1, package="airline")  # env 0 here, env 1 in the worker
    envs.reset(seed=0)
    os.kill(envs._workers[0].pid, signal.SIGINT)  # Ctrl-C reaches the worker too: it goes on

    def interrupted(actions):
        raise KeyboardInterrupt  # Ctrl-C while this process steps its share

    with monkeypatch.context() as patch:
        patch.setattr(envs._local, "step", interrupted)
        with pytest.raises(KeyboardInterrupt):
            envs.step(["Hello."] * 2)  # the worker has stepped and replied; nobody read it
    observations, _ = envs.reset(options={"task_id": "airline-cancel-01"})
    assert observations[0] == observations[1]  # the reset's own replies, not the stale step's
    obs, *_ = envs.step(["What is your user id?"] * 2)
    assert obs[0] == obs[1] and envs._workers[0].is_alive()
    envs.close()
    with pytest.raises(RuntimeError, match="closed"):
        envs.step(["Hello."] * 2)


def test_a_dead_worker_is_named_not_read_as_a_broken_pipe():
    envs = EnvPool(2, num_workers=1, package="airline")
    envs.reset(seed=0)
    envs._workers[0].kill()
    envs._workers[0].join()
    with pytest.raises(RuntimeError, match=r"worker 0 \(pid \d+\) has exited .* make a new one"):
        envs.step(["Hello."] * 2)
    envs.close()


def test_default_make_vec_is_the_in_process_pool():
    envs = gym.make_vec(ENV_ID, num_envs=2)
    assert isinstance(envs, EnvPool) and envs.num_workers == 0
    obs, _ = envs.reset(seed=0)
    _, rewards, *_ = envs.step(["Bye."] * 2)
    assert len(obs) == 2 and np.all(rewards >= 0)
    envs.close()


def test_merged_infos_are_what_gymnasium_builds_one_env_at_a_time():
    """`merge_infos` builds the arrays once; the result must equal `VectorEnv._add_info`'s,
    masks, dtypes and nested dicts included, also when some envs lack a key."""
    envs = EnvPool(3, package="airline")
    _, first = envs._local.envs[0].reset(seed=1)
    infos = [
        first,
        {"turn": 2, "task_id": "b", "reward_breakdown": {"total": 1.0, "violations": []}},
        {"turn": 3, "success": True, "final_obs": "done", "scores": np.arange(2.0)},
    ]
    expected: dict = {}
    for index, info in enumerate(infos):
        expected = envs._add_info(expected, info, index)
    merged = merge_infos(infos)

    def same(a, b):
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and all(
                np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
                for x, y in zip(a, b, strict=True)
            )
        )

    assert same(merged, expected)
    # the usual step: every env has the same keys (numbers, texts, lists, nested dicts)
    env = envs._local.envs[0]
    env.reset(options={"task_id": "airline-cancel-01"})
    *_, final = env.step("Goodbye.")
    alike = [final, {**final, "turn": 7, "success": True}, dict(final)]
    expected = {}
    for index, info in enumerate(alike):
        expected = envs._add_info(expected, info, index)
    assert set(final) >= {"reward_breakdown", "success", "messages", "turn"}
    assert same(merge_infos(alike), expected)
    envs.close()
