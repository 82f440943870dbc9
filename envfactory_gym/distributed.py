"""Ray: evaluation episodes and env pools spread over a cluster (the `ray` extra).

Three pieces, each usable on a local Ray (started here when no address is given) or a cluster:

- `play_on_ray`: `envfactory eval --ray [ADDRESS]` / `run_evaluation(..., ray=...)`. One actor
  per worker builds the agent once (from the picklable factory) and plays chunks of episode jobs;
  records come back as chunks finish, so the caller's journal (`episodes.jsonl`) and resume work
  exactly as on the local path.
- `RayEnvPool`: `EnvPool` (see `envfactory_gym.vector`) with its shares of envs in Ray actors: a
  batch of actions in, a batch of observations out, one message per actor per step, the same
  next-step autoreset and the same results for the same seeds.
- `RayEnvSlots`: the env side of training rollouts (`train.py --env_workers ray`): one env per
  concurrent episode, any mix of env ids, kept on CPU actors (`num_gpus=0`) while generation
  stays with the trainer's GPUs. It has the interface of `training.rollout.LocalEnvSlots`.

`ray` is imported only inside these functions, so `import envfactory_gym` never needs it. Every
Ray node needs this package (and the env packages used) installed in the same Python version;
see the README's "Ray" section.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from envfactory_gym.vector import EnvPool, Transition, _Share

RayAddress = bool | str | None
"""Where Ray runs. None or True: Ray's own default (the `RAY_ADDRESS` variable, else a cluster
that `ray start` runs on this machine, else a new local one); "local": always a new local one;
"auto": the cluster `ray start` runs on this machine (an error when there is none); else the
address of a cluster's head, `HOST:PORT` (6379 by default) or a Ray Client `ray://HOST:10001`."""

Job = tuple[str, str, int, int]
"""One evaluation episode: (env id, task id, trial, seed)."""

CONNECT_TIMEOUT_S = 5.0
"""How long an explicit `HOST:PORT` address may take to accept a TCP connection before we give up
(Ray itself would retry for a minute or more)."""


# ----- connecting -------------------------------------------------------------------------------
def require_ray() -> Any:
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "this needs Ray: pip install 'envfactory-gym[ray]' (or pip install 'ray>=2.40')"
        ) from exc
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of an explicit address; None for the names Ray resolves itself."""
    if address in ("auto", "local"):
        return None
    rest = address.removeprefix("ray://")
    default = 10001 if address.startswith("ray://") else 6379
    host, _, port = rest.rpartition(":") if ":" in rest else (rest, "", str(default))
    try:
        return host.strip("[]"), int(port)
    except ValueError as exc:
        raise ValueError(
            f"not a Ray address: {address!r} (expected HOST:PORT, ray://HOST:PORT or auto)"
        ) from exc


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise a ConnectionError naming `address` unless it accepts a TCP connection within
    `timeout` seconds (`auto` and `local` are Ray's to resolve and pass unchecked)."""
    hostport = _host_port(address)
    if hostport is None:
        return
    try:
        socket.create_connection(hostport, timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(
            f"cannot reach the Ray cluster at {address!r} ({exc}); start one there with "
            "`ray start --head`, or check the host and port"
        ) from exc


def connect(address: RayAddress = None, *, num_cpus: int | None = None) -> bool:
    """Start or join Ray unless this process already has; True when this call did (so the caller
    shuts it down when done). `num_cpus` applies to a local Ray started here only.

    An explicit address that does not accept a connection within `CONNECT_TIMEOUT_S` raises a
    ConnectionError naming it (instead of Ray's minute of retries)."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    target = None if address is None or address is True else str(address)
    if target is not None or os.environ.get("RAY_ADDRESS"):
        check_reachable(target or os.environ["RAY_ADDRESS"])
    joining = target not in (None, "local") or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if not joining:  # these only apply to a Ray started here
        kwargs |= {"include_dashboard": False, "num_cpus": num_cpus}
    try:
        ray.init(address=target, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = target or os.environ.get("RAY_ADDRESS") or "a local Ray"
        raise ConnectionError(f"cannot connect to the Ray cluster at {where!r}: {exc}") from exc
    return True


def cluster_cpus() -> int:
    """CPUs of the connected cluster (at least 1)."""
    return max(1, int(require_ray().cluster_resources().get("CPU", 1)))


def _actor_count(workers: int, most: int, sharers: int = 1) -> int:
    """`workers` actors (0: one per cluster CPU, split between `sharers` processes that each
    make their own), at most `most`, and at most the cluster's CPUs (an actor asks for one CPU;
    more would wait for CPUs that never come)."""
    cpus = cluster_cpus()
    count = workers if workers > 0 else max(1, cpus // max(1, sharers))
    if count > cpus:
        warnings.warn(
            f"{count} Ray workers asked for but the cluster has {cpus} CPUs; using {cpus}",
            stacklevel=3,
        )
        count = cpus
    return max(1, min(count, most))


def _kill(actors: Sequence[Any]) -> None:
    ray = require_ray()
    for actor in actors:
        ray.kill(actor)


def _close_actors(actors: Sequence[Any], started_ray: bool) -> None:
    """Close the actors' envs, kill the actors, and stop Ray if this pool started it (a no-op
    once the actors are gone, so closing twice is safe)."""
    if not actors:
        return
    ray = require_ray()
    ray.get([actor.close.remote() for actor in actors])
    _kill(actors)
    if started_ray:
        ray.shutdown()


# ----- evaluation -------------------------------------------------------------------------------
class EvalWorker:
    """A Ray actor: one evaluation worker (`evaluation.start_worker`: the agent built once, one
    env per env id) that plays job chunks with `evaluation.play_chunk`, as a local worker does."""

    def __init__(
        self, agent_factory: Callable[[], Any], user_factory: Callable[[], Any] | None = None
    ) -> None:
        from envfactory_gym.evaluation import start_worker

        start_worker(agent_factory, user_factory)

    def play(self, jobs: list[Job]) -> list[dict[str, Any]]:
        """Each job's episode record, in order."""
        from envfactory_gym.evaluation import play_chunk

        return play_chunk(jobs)


def _affine_queues(jobs: list[Job], count: int, size: int) -> list[deque[list[Job]]]:
    """The jobs (in env order) cut into `count` contiguous blocks of chunks, one per actor: an
    actor then builds few of the envs (building one costs more than dozens of oracle episodes)."""
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    bounds = np.linspace(0, len(chunks), count + 1).round().astype(int)
    return [deque(chunks[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _next_chunk(queues: list[deque[list[Job]]], index: int) -> list[Job] | None:
    """Actor `index`'s next chunk: the front of its own block, else the back of the longest
    other block (work stealing, so no actor idles while others have work); None when done."""
    if queues[index]:
        return queues[index].popleft()
    longest = max(queues, key=len)
    return longest.pop() if longest else None


def play_on_ray(
    jobs: list[Job],
    agent_factory: Callable[[], Any],
    workers: int = 0,
    address: RayAddress = None,
    *,
    chunk_size: int | None = None,
    user_factory: Callable[[], Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Each job's record as its chunk finishes, played by `workers` Ray actors (0: one per CPU of
    the cluster). Connects to `address` (see `RayAddress`) unless Ray is already initialized, and
    shuts Ray down at the end only if it started or joined it here."""
    if not jobs:
        return
    ray = require_ray()
    started = connect(address)
    actors: list[Any] = []
    try:
        count = _actor_count(workers, len(jobs))
        size = chunk_size or max(1, min(64, len(jobs) // (count * 4)))
        queues = _affine_queues(jobs, count, size)
        worker = ray.remote(num_cpus=1, num_gpus=0)(EvalWorker)
        actors = [worker.remote(agent_factory, user_factory) for _ in range(count)]
        running: dict[Any, int] = {}
        for _ in range(2):  # two chunks in flight per actor: no idle gap between chunks
            for index, actor in enumerate(actors):
                if chunk := _next_chunk(queues, index):
                    running[actor.play.remote(chunk)] = index
        while running:
            (ready,), _ = ray.wait(list(running), num_returns=1)
            index = running.pop(ready)
            records = ray.get(ready)
            if chunk := _next_chunk(queues, index):
                running[actors[index].play.remote(chunk)] = index
            yield from records
    finally:
        _kill(actors)
        if started:
            ray.shutdown()


# ----- a vector env on Ray actors ---------------------------------------------------------------
class ShareWorker:
    """A Ray actor's state: one `_Share` of a `RayEnvPool`'s envs."""

    def __init__(self, count: int, env_kwargs: dict[str, Any]) -> None:
        import envfactory_gym  # noqa: F401

        self.share = _Share(count, env_kwargs)

    def call(self, command: str, *args: Any) -> Any:
        """`reset(seeds, options)` or `step(actions)` on this share."""
        return getattr(self.share, command)(*args)

    def close(self) -> None:
        self.share.close()


class RayEnvPool(EnvPool):
    """`EnvPool` with its envs in `num_workers` Ray actors (0: one per CPU of the cluster).

        pool = RayEnvPool(16, num_workers=4, package="airline")   # ToolUseEnv's kwargs
        obs, info = pool.reset(seed=0)
        obs, rewards, terminated, truncated, info = pool.step(actions)   # 16 texts in

    The same batch protocol, next-step autoreset and results as `EnvPool` for the same seeds and
    actions; `address` as in `RayAddress`. Each actor asks for `num_cpus` CPUs and no GPU."""

    def __init__(
        self,
        num_envs: int,
        num_workers: int = 0,
        *,
        address: RayAddress = None,
        num_cpus: float = 1.0,
        **env_kwargs: Any,
    ) -> None:
        self._describe(num_envs, num_workers, env_kwargs)  # bad kwargs fail here, not in an actor
        self._local = None
        self._pipes, self._workers = [], []
        ray = require_ray()
        self._started_ray = connect(address)
        self.num_workers = _actor_count(num_workers, num_envs)
        sizes = np.array_split(np.arange(num_envs), self.num_workers)
        self._sizes = [len(part) for part in sizes]
        worker = ray.remote(num_cpus=num_cpus, num_gpus=0)(ShareWorker)
        self._actors = [worker.remote(size, env_kwargs) for size in self._sizes]

    def _call(self, command: str, per_env: list[Any], *extra: Any) -> list[Any]:
        ray = require_ray()
        refs, start = [], 0
        for actor, size in zip(self._actors, self._sizes, strict=True):
            refs.append(actor.call.remote(command, per_env[start : start + size], *extra))
            start += size
        return [item for part in ray.get(refs) for item in part]

    def close_extras(self, **kwargs: Any) -> None:
        _close_actors(self._actors, self._started_ray)
        self._actors = []


# ----- training rollouts ------------------------------------------------------------------------
class SlotWorker:
    """A Ray actor's state: envs keyed by (env id, slot), made with the same `gym.make` kwargs as
    the trainer's local envs, and reused from batch to batch."""

    def __init__(self, make_kwargs: dict[str, Any]) -> None:
        import envfactory_gym  # noqa: F401

        self.make_kwargs = make_kwargs
        self.envs: dict[tuple[str, int], Any] = {}

    def _env(self, env_id: str, slot: int) -> Any:
        import gymnasium as gym

        if (env_id, slot) not in self.envs:
            self.envs[(env_id, slot)] = gym.make(env_id, **self.make_kwargs)
        return self.envs[(env_id, slot)]

    def reset(self, items: list[tuple[str, int, str, float | None]]) -> list[dict[str, Any]]:
        """Reset each (env id, slot) on its task (with the trace weight `tau` when not None);
        the reset infos."""
        infos = []
        for env_id, slot, task_id, tau in items:
            env = self._env(env_id, slot)
            if tau is not None:  # the trainer's step-based schedule replaces the env's own
                env.unwrapped.reward_config.tau = tau
                env.unwrapped.reward_config.tau_final = None
            infos.append(env.reset(options={"task_id": task_id})[1])
        return infos

    def step(self, items: list[tuple[str, int, str]]) -> list[Transition]:
        return [self._env(e, s).step(action) for e, s, action in items]

    def score(self, items: list[tuple[str, int]]) -> list[dict[str, Any]]:
        """The reward breakdown of each env's episode as it stands (for one cut short)."""
        return [self._env(e, s).unwrapped.score().model_dump() for e, s in items]

    def close(self) -> None:
        for env in self.envs.values():
            env.close()


class RayEnvSlots:
    """The rollout runner's envs on `num_workers` Ray actors (0: one per CPU of the cluster, or
    an equal share of them when `sharers` training processes each make a `RayEnvSlots`).

    `reset(requests, tau)` places episode i of the batch on actor i mod num_workers (slots reused
    from batch to batch, as the local pool does); `step(indices, actions)` sends one message per
    actor with all its actions. Same interface and same results as `LocalEnvSlots`."""

    def __init__(
        self,
        make_kwargs: dict[str, Any],
        num_workers: int = 0,
        *,
        address: RayAddress = None,
        num_cpus: float = 1.0,
        sharers: int = 1,
    ) -> None:
        ray = require_ray()
        self._started_ray = connect(address)
        self.num_workers = _actor_count(num_workers, 1 << 30, sharers)
        worker = ray.remote(num_cpus=num_cpus, num_gpus=0)(SlotWorker)
        self._actors = [worker.remote(dict(make_kwargs)) for _ in range(self.num_workers)]
        self._placed: list[tuple[int, str, int]] = []  # per episode: actor, env id, slot

    def _gather(self, method: str, per_index: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        """Call `method` once per actor with the items of its episodes; results by episode."""
        ray = require_ray()
        groups: dict[int, list[int]] = {}
        for index in per_index:
            groups.setdefault(self._placed[index][0], []).append(index)
        refs = {
            actor: getattr(self._actors[actor], method).remote([per_index[i] for i in indices])
            for actor, indices in groups.items()
        }
        results = dict(zip(refs, ray.get(list(refs.values())), strict=True))
        out: dict[int, Any] = {}
        for actor, indices in groups.items():
            out.update(zip(indices, results[actor], strict=True))
        return out

    def reset(self, requests: Sequence[tuple[str, str]], tau: float | None) -> list[dict[str, Any]]:
        slots: dict[tuple[int, str], int] = {}
        self._placed = []
        items = {}
        for index, (env_id, task_id) in enumerate(requests):
            actor = index % self.num_workers
            slot = slots.get((actor, env_id), 0)
            slots[(actor, env_id)] = slot + 1
            self._placed.append((actor, env_id, slot))
            items[index] = (env_id, slot, task_id, tau)
        infos = self._gather("reset", items)
        return [infos[i] for i in range(len(requests))]

    def step(self, indices: Sequence[int], actions: Sequence[str]) -> list[Transition]:
        items = {i: (*self._placed[i][1:], a) for i, a in zip(indices, actions, strict=True)}
        results = self._gather("step", items)
        return [results[i] for i in indices]

    def score(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        results = self._gather("score", {i: self._placed[i][1:] for i in indices})
        return [results[i] for i in indices]

    def close(self) -> None:
        _close_actors(self._actors, self._started_ray)
        self._actors = []
