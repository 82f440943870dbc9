"""`EnvPool`: a vector env that steps many envs in batches, in this process or over workers.

Gymnasium's `AsyncVectorEnv` gives every env a process and a message per step. An env step here
costs tens of microseconds, less than the message, so that only slows things down. `EnvPool`
gives each worker a share of the envs and sends one message per worker per step with all of
its actions.

    envs = gym.make_vec("envfactory/Airline-v0", num_envs=16,
                        vectorization_mode="vector_entry_point", num_workers=2)

`num_workers=0` (the default) steps every env in this process, without Gymnasium's wrappers.
Autoreset follows Gymnasium's next-step mode: the step after an env's episode ends resets it
(with the env's default task choice) and ignores its action; `reset(options=...)` resets every
env and clears those flags.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envfactory_gym.env import ToolUseEnv

Transition = tuple[str, float, bool, bool, dict[str, Any]]


class _Share:
    """Envs that one process steps, with their autoreset flags."""

    def __init__(self, count: int, env_kwargs: dict[str, Any]) -> None:
        self.envs = [ToolUseEnv(**env_kwargs) for _ in range(count)]
        self.pending_reset = [False] * count

    def reset(self, seeds: list[int | None], options: dict[str, Any] | None) -> list[Any]:
        self.pending_reset = [False] * len(self.envs)
        pairs = zip(self.envs, seeds, strict=True)
        return [env.reset(seed=seed, options=options) for env, seed in pairs]

    def step(self, actions: list[str]) -> list[Transition]:
        results = []
        for index, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            if self.pending_reset[index]:
                obs, info = env.reset()
                results.append((obs, 0.0, False, False, info))
                self.pending_reset[index] = False
                continue
            result = env.step(action)
            self.pending_reset[index] = result[2] or result[3]
            results.append(result)
        return results

    def close(self) -> None:
        for env in self.envs:
            env.close()


def _work(pipe: Connection, count: int, env_kwargs: dict[str, Any]) -> None:
    share = _Share(count, env_kwargs)
    try:
        while True:
            command, data = pipe.recv()
            if command == "close":
                break
            try:
                pipe.send((True, getattr(share, command)(*data)))
            except Exception as exc:  # noqa: BLE001 - reraised in the main process
                pipe.send((False, exc))
    finally:
        share.close()
        pipe.close()


class EnvPool(VectorEnv):
    """`num_envs` envs of one package stepped in batches; see the module doc."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, num_workers: int = 0, **env_kwargs: Any) -> None:
        if num_envs < 1 or num_workers < 0:
            raise ValueError("num_envs must be >= 1 and num_workers >= 0")
        env_kwargs.pop("max_episode_steps", None)  # make_vec passes the spec's, which we ignore
        self.num_envs = num_envs
        self.num_workers = min(num_workers, num_envs)
        probe = ToolUseEnv(**env_kwargs)
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**probe.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = None
        probe.close()
        sizes = np.array_split(np.arange(num_envs), max(1, self.num_workers))
        self._sizes = [len(part) for part in sizes]
        self._local: _Share | None = None
        self._pipes: list[Connection] = []
        self._workers: list[Any] = []
        if self.num_workers == 0:
            self._local = _Share(num_envs, env_kwargs)
            return
        context = multiprocessing.get_context()
        for size in self._sizes:
            parent, child = context.Pipe()
            worker = context.Process(target=_work, args=(child, size, env_kwargs), daemon=True)
            worker.start()
            child.close()
            self._pipes.append(parent)
            self._workers.append(worker)

    # ----- the batch protocol ---------------------------------------------------------------
    def _call(self, command: str, per_env: list[Any], *extra: Any) -> list[Any]:
        """Run `command` on every share with its slice of `per_env`; results in env order."""
        if self._local is not None:
            return getattr(self._local, command)(per_env, *extra)
        start = 0
        for pipe, size in zip(self._pipes, self._sizes, strict=True):
            pipe.send((command, (per_env[start : start + size], *extra)))
            start += size
        results: list[Any] = []
        for pipe in self._pipes:
            ok, payload = pipe.recv()
            if not ok:
                raise payload
            results.extend(payload)
        return results

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        results = self._call("reset", seeds, options)
        infos: dict[str, Any] = {}
        for index, (_, info) in enumerate(results):
            infos = self._add_info(infos, info, index)
        return tuple(obs for obs, _ in results), infos

    def step(
        self, actions: Any
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        results = self._call("step", actions)
        infos: dict[str, Any] = {}
        for index, result in enumerate(results):
            infos = self._add_info(infos, result[4], index)
        return (
            tuple(r[0] for r in results),
            np.array([r[1] for r in results], dtype=np.float64),
            np.array([r[2] for r in results], dtype=np.bool_),
            np.array([r[3] for r in results], dtype=np.bool_),
            infos,
        )

    def close_extras(self, **kwargs: Any) -> None:
        if self._local is not None:
            self._local.close()
        for pipe in self._pipes:
            with contextlib.suppress(BrokenPipeError, OSError):
                pipe.send(("close", ()))
        for worker in self._workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.terminate()
        self._pipes, self._workers = [], []
