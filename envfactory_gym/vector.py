"""`EnvPool`: a vector env that steps many envs in batches, in this process or over workers.

Gymnasium's `AsyncVectorEnv` gives every env a process and a message per step. An env step here
costs tens of microseconds, less than the message, so that only slows things down. `EnvPool`
gives each process a share of the envs and sends one message per worker per step with all of
its actions:

    envs = gym.make_vec("envfactory/Airline-v0", num_envs=16,
                        vectorization_mode="vector_entry_point", num_workers=1)

- `num_workers=0` (the default) steps every env in this process, without Gymnasium's wrappers.
- `num_workers=K` starts K worker processes. This process steps a share too while they work
  (`step_here=True`, the default; not when there are as many workers as envs), so on 2 cores
  `num_workers=1` uses both.
- When the pool's processes (the workers and this one) fit on the machine's cores, each waits
  for the next message by polling for up to `SPIN_SECONDS` before it sleeps: a sleeping process
  wakes tens of microseconds late and with cold caches, more than a whole env step. With more
  processes than cores, nobody polls.

A call interrupted midway (Ctrl-C while this process steps its share; workers ignore Ctrl-C)
leaves the envs where it took them, and the next call reads its own replies; `reset` to start
over. An interrupt while a message is half sent or half read breaks that pipe. A worker that
has died, or whose pipe broke, fails the next call with a `RuntimeError` that names it.

Autoreset follows Gymnasium's next-step mode: the step after an env's episode ends resets it
(with the env's default task choice) and ignores its action; `reset(options=...)` resets every
env and clears those flags.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envfactory_gym.env import ToolUseEnv

Transition = tuple[str, float, bool, bool, dict[str, Any]]
SPIN_SECONDS = 0.002
"""How long a pool process polls for its next message before it sleeps in `recv`."""


def receive(pipe: Connection, spin: bool) -> Any:
    """The next message on `pipe`: polled for up to `SPIN_SECONDS` first when `spin` is on."""
    if spin:
        deadline = time.perf_counter() + SPIN_SECONDS
        while not pipe.poll() and time.perf_counter() < deadline:
            pass
    return pipe.recv()


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class _Share:
    """Envs that one process steps, with their autoreset flags."""

    def __init__(self, count: int, env_kwargs: dict[str, Any], info_tools: bool = True) -> None:
        self.envs = [ToolUseEnv(**env_kwargs) for _ in range(count)]
        for env in self.envs:
            env.info_tools = info_tools
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


def _work(pipe: Connection, count: int, env_kwargs: dict[str, Any], spin: bool) -> None:
    # Ctrl-C reaches the whole process group: the pool's process handles it, and the worker
    # finishes its step and answers, so the pool stays usable (it stops on "close" or SIGTERM).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    share = _Share(count, env_kwargs, info_tools=False)  # the pool adds them on its side
    # What the worker inherited and its envs' fixed parts live as long as it does: frozen, the
    # collector neither scans them nor, by touching them, copies a forked parent's pages.
    gc.freeze()
    try:
        while True:
            command, data = receive(pipe, spin)
            if command == "close":
                break
            try:
                pipe.send((True, getattr(share, command)(*data)))
            except Exception as exc:  # noqa: BLE001 - reraised in the main process
                pipe.send((False, exc))
    finally:
        share.close()
        pipe.close()


def merge_infos(infos: list[dict[str, Any]]) -> dict[str, Any]:
    """The envs' infos in Gymnasium's vector form, as `VectorEnv._add_info` would build them one
    env at a time (per key an array over the envs, and a `_key` mask of the envs that have it),
    but with each array made once: per env and key, `_add_info` allocates arrays it throws away,
    which costs more than stepping an env."""
    num_envs = len(infos)
    keys = infos[0].keys()
    merged: dict[str, Any] = {}
    if all(info.keys() == keys for info in infos):  # the usual case: every env has every key
        for key in keys:
            merged[key] = _batch(key, [info[key] for info in infos])
            mask = np.empty(num_envs, dtype=np.bool_)  # np.ones costs four times as much
            mask.fill(True)
            merged[f"_{key}"] = mask
        return merged
    grouped: dict[str, dict[int, Any]] = {}
    for index, info in enumerate(infos):
        for key, value in info.items():
            grouped.setdefault(key, {})[index] = value
    for key, present in grouped.items():
        merged[key] = _batch_some(key, present, num_envs)
        mask = np.zeros(num_envs, dtype=np.bool_)
        mask[list(present)] = True
        merged[f"_{key}"] = mask
    return merged


def _is_number(value: Any) -> bool:
    return type(value) in (int, float, bool) or isinstance(value, np.number)


def _batch(key: str, values: list[Any]) -> Any:
    """One info key's values, one per env, as `_add_info` batches them."""
    first = values[0]
    if key == "final_obs":
        return np.fromiter(values, dtype=object, count=len(values))
    if isinstance(first, dict):
        return merge_infos(values)
    if _is_number(first):
        return np.array(values, dtype=type(first))
    if isinstance(first, np.ndarray):
        return _batch_some(key, dict(enumerate(values)), len(values))
    return np.fromiter(values, dtype=object, count=len(values))  # a list stays one item


def _batch_some(key: str, present: dict[int, Any], num_envs: int) -> Any:
    """One info key's values for the envs that have it (env index -> value)."""
    first = next(iter(present.values()))
    if key != "final_obs" and isinstance(first, dict):
        return merge_infos([present.get(index, {}) for index in range(num_envs)])
    if key != "final_obs" and _is_number(first):
        array = np.zeros(num_envs, dtype=type(first))
    elif key != "final_obs" and isinstance(first, np.ndarray):
        array = np.zeros((num_envs, *first.shape), dtype=first.dtype)
    else:
        array = np.empty(num_envs, dtype=object)  # every item None
    for index, value in present.items():
        array[index] = value
    return array


class EnvPool(VectorEnv):
    """`num_envs` envs of one package stepped in batches; see the module doc."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self, num_envs: int, num_workers: int = 0, step_here: bool = True, **env_kwargs: Any
    ) -> None:
        self._describe(num_envs, num_workers, env_kwargs)
        self.num_workers = min(num_workers, num_envs)
        if self.num_workers == num_envs:
            step_here = False  # one env per worker: nothing is left to step here
        here = step_here or self.num_workers == 0
        parts = np.array_split(np.arange(num_envs), self.num_workers + here)
        self._local_size = len(parts[0]) if here else 0
        self._sizes = [len(part) for part in parts[1 if here else 0 :]]
        self._pipes: list[Connection] = []
        self._workers: list[Any] = []
        self._unread: list[bool] = []
        """Per worker: whether a reply was asked for and not read yet."""
        self.spin = self.num_workers + 1 <= usable_cores()
        """Whether the pool's processes poll for messages (they fit on the cores)."""
        context = multiprocessing.get_context()
        for size in self._sizes:
            parent, child = context.Pipe()
            worker = context.Process(
                target=_work, args=(child, size, env_kwargs, self.spin), daemon=True
            )
            worker.start()
            child.close()
            self._pipes.append(parent)
            self._workers.append(worker)
            self._unread.append(False)
        # made after the fork, so no worker starts with a copy of these databases
        self._local = _Share(self._local_size, env_kwargs) if here else None

    def _describe(self, num_envs: int, num_workers: int, env_kwargs: dict[str, Any]) -> None:
        """Check the sizes and take the spaces, metadata and package from a probe env built with
        `env_kwargs` (bad kwargs fail here, before any worker starts)."""
        if num_envs < 1 or num_workers < 0:
            raise ValueError("num_envs must be >= 1 and num_workers >= 0")
        env_kwargs.pop("max_episode_steps", None)  # make_vec passes the spec's, which we ignore
        self.num_envs = num_envs
        probe = ToolUseEnv(**env_kwargs)
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = {**probe.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.render_mode = None
        self._package = probe.package
        probe.close()

    @property
    def steps_here(self) -> bool:
        """Whether this process steps a share of the envs itself."""
        return self._local is not None

    # ----- the batch protocol ---------------------------------------------------------------
    def _call(self, command: str, per_env: list[Any], *extra: Any) -> list[Any]:
        """Run `command` on every share with its slice of `per_env`; results in env order. The
        workers get theirs first, so they work while this process runs its own share."""
        if self.closed:
            raise RuntimeError("this EnvPool is closed: make a new one")
        self._read_stale_replies()
        start = self._local_size
        for index, size in enumerate(self._sizes):
            self._send(index, (command, (per_env[start : start + size], *extra)))
            start += size
        results: list[Any] = []
        error: BaseException | None = None
        if self._local is not None:
            try:
                results = getattr(self._local, command)(per_env[: self._local_size], *extra)
            except Exception as exc:  # noqa: BLE001 - raised once every worker has answered
                error = exc
        for index in range(len(self._pipes)):  # every reply is read, so the next call reads its own
            ok, payload = self._receive(index)
            if not ok:
                error = error or payload
                continue
            for result in payload:  # a reset's info: its own copy of the tool schemas
                info = result[-1]
                if "tools" in info and info["tools"] is None:
                    info["tools"] = self._package.copy_tool_schemas()
            results.extend(payload)
        if error is not None:
            raise error
        return results

    def _send(self, index: int, message: tuple[str, tuple[Any, ...]]) -> None:
        """Send worker `index` its command and note that a reply is owed."""
        try:
            self._pipes[index].send(message)
        except OSError as exc:  # BrokenPipeError: the worker is gone
            raise self._worker_gone(index) from exc
        self._unread[index] = True

    def _receive(self, index: int) -> Any:
        """Worker `index`'s reply: (ok, results or the exception it raised)."""
        try:
            reply = receive(self._pipes[index], self.spin)
        except (EOFError, OSError) as exc:
            raise self._worker_gone(index) from exc
        self._unread[index] = False
        return reply

    def _read_stale_replies(self) -> None:
        """Drop the replies a call left unread when it was interrupted (a KeyboardInterrupt
        while this process stepped its share), so that this call reads its own."""
        for index, unread in enumerate(self._unread):
            if unread:
                self._receive(index)

    def _worker_gone(self, index: int) -> RuntimeError:
        """The error for a worker whose pipe broke: it died, or the pipe was cut mid-message."""
        worker = self._workers[index]
        worker.join(timeout=1)
        how = "is alive but its pipe is broken" if worker.is_alive() else (
            f"has exited with code {worker.exitcode}"
        )  # fmt: skip
        return RuntimeError(
            f"EnvPool worker {index} (pid {worker.pid}) {how}; its envs are lost: close this "
            "pool and make a new one"
        )

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[tuple[str, ...], dict[str, Any]]:
        if seed is None or isinstance(seed, int):
            seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
        results = self._call("reset", seeds, options)
        return tuple(obs for obs, _ in results), merge_infos([info for _, info in results])

    def step(
        self, actions: Any
    ) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = list(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        results = self._call("step", actions)
        infos = merge_infos([result[4] for result in results])
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
        self._pipes, self._workers, self._unread = [], [], []
