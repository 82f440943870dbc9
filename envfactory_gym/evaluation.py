"""Run an agent over envs' tasks and report what a tau-bench user expects.

`run_episode` plays one task to its end; `evaluate` plays every task of one env once (the quick
path). `run_evaluation` is the full harness behind `envfactory eval --out DIR`: several envs,
`trials` episodes per task, in `workers` processes, each episode appended to
`DIR/episodes.jsonl` as it finishes (a killed run resumes where it stopped), then a report per
env, per domain and overall (`summarize`) written as JSON, Markdown and PNG plots.

pass^k follows tau-bench: for a task tried n times with c successes, pass^k = C(c, k) / C(n, k)
(the chance that k trials drawn from the n all succeed), averaged over tasks; pass^1 is pass@1.
Intervals are 95% bootstrap intervals over tasks (seeded, so reports repeat).
"""

from __future__ import annotations

import inspect
import json
import math
import random
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
from tqdm import tqdm

from envfactory_gym.package import load_package
from envfactory_gym.registry import package_name
from envfactory_gym.tasks import Task

FAILURES = (
    "collateral write", "policy violation", "malformed call", "gave up", "missing write",
    "wrong tool", "wrong argument", "wrong answer",
)  # fmt: skip
"""Why an episode failed, the first that applies in this order (see `classify_failure`)."""
BREAKDOWN = ("trace", "state", "outputs", "outcome", "penalty")


class EpisodeAgent(Protocol):
    """What plays the assistant: `reset(task)` starts an episode (an agent that samples may take
    `reset(task, seed=...)` and is then reseeded per episode, so runs repeat); `act(messages,
    tools)` gets the conversation so far (OpenAI-style chat, system prompt first) and the tool
    schemas, and returns the raw assistant text: `<tool_call>` blocks and/or a message."""

    def reset(self, task: Task) -> None: ...
    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str: ...


def run_episode(
    env: gym.Env,
    agent: EpisodeAgent,
    task_id: str,
    seed: int = 0,
    trial: int = 0,
    keep_messages: bool = False,
) -> dict[str, Any]:
    """Play one task to the end; return the episode's record: reward and its breakdown, turns,
    calls, why it failed (None when it succeeded), and with `keep_messages` the conversation
    and the tool schemas (what SFT data is made of). The one episode loop of evaluation, SFT
    data and `envfactory play --as user`."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    tools, messages = info["tools"], info["messages"]  # on reset; steps add new_messages
    core = env.unwrapped
    _reset_agent(agent, core.task, seed)
    terminated = truncated = False
    reward, turns = 0.0, 0
    start = time.perf_counter()
    while not (terminated or truncated):
        action = agent.act(messages, tools)
        obs, reward, terminated, truncated, info = env.step(action)
        messages.extend(info["new_messages"])
        turns += 1
    breakdown = info["reward_breakdown"]
    calls = list(core.calls)
    tokens = getattr(agent, "last_episode_tokens", None)
    return {
        "env": core.package.config.gym_id,
        "domain": core.package.config.domain,
        "task_id": task_id,
        "kind": core.task.kind,
        "trial": trial,
        "seed": seed,
        "reward": reward,
        "success": info["success"],
        "turns": turns,
        "truncated": truncated,
        "calls": len(calls),
        "malformed_calls": sum(c.format_error for c in calls),
        "tokens": tokens,
        "seconds": round(time.perf_counter() - start, 4),
        "failure": None
        if info["success"]
        else classify_failure(core.task, breakdown, calls, bool(core.diff()), truncated),
        "breakdown": breakdown,
    } | ({"messages": messages, "tools": tools} if keep_messages else {})


def _reset_agent(agent: Any, task: Task, seed: int) -> None:
    """`agent.reset(task, seed=...)` when the agent takes a seed (so sampling repeats), else
    `agent.reset(task)`."""
    if "seed" in inspect.signature(agent.reset).parameters:
        agent.reset(task, seed=seed)
    else:
        agent.reset(task)


def classify_failure(
    task: Task, breakdown: dict[str, Any], calls: list[Any], wrote: bool, truncated: bool
) -> str:
    """The first of `FAILURES` that explains a failed episode:

    - collateral write: a row the task does not expect was written (harm);
    - policy violation: a refusal task, and the agent changed the database anyway;
    - malformed call: a call could not be parsed or did not fit its tool's schema;
    - gave up: no tool call succeeded, or the turn limit ran out;
    - missing write: the task expects a change and the database was not changed;
    - wrong tool: a tool of the ground truth was never called;
    - wrong argument: every expected tool was called, yet calls or the final state differ;
    - wrong answer: the state is right but the required facts were not (all) stated, or a
      distractor was.
    """
    if breakdown["violations"] and not (task.kind == "refusal" and wrote):
        return "collateral write"
    if task.kind == "refusal" and wrote:
        return "policy violation"
    if breakdown["format_errors"]:
        return "malformed call"
    if truncated or not any(c.ok for c in calls):
        return "gave up"
    if task.writes and not wrote:
        return "missing write"
    if {c.name for c in task.calls} - {c.name for c in calls if c.ok}:
        return "wrong tool"
    if breakdown["trace"] < 1.0 or breakdown["state"] < 1.0:
        return "wrong argument"
    return "wrong answer"


def evaluate(
    env_id: str,
    agent: EpisodeAgent,
    agent_name: str,
    split: str = "all",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Play every task of a split once and report success rate, mean reward and per-task detail."""
    env = gym.make(env_id)
    tasks = env.unwrapped.package.tasks_for(split)
    start = time.perf_counter()
    per_task = [
        run_episode(env, agent, task.id, episode_seed(seed, env_id, task.id, 0))
        for task in tqdm(tasks, desc=f"{agent_name} on {env_id}", disable=not progress)
    ]
    env.close()
    n = len(per_task)
    return {
        "env": env_id,
        "agent": agent_name,
        "split": split,
        "tasks": n,
        "success_rate": sum(r["success"] for r in per_task) / n if n else 0.0,
        "mean_reward": sum(r["reward"] for r in per_task) / n if n else 0.0,
        "seconds": time.perf_counter() - start,
        "per_task": per_task,
    }


# ----- the full harness -------------------------------------------------------------------------
AgentFactory = Callable[[], EpisodeAgent]
"""Builds the agent once per worker process (a picklable callable: a class, a functools.partial)."""


def episode_seed(seed: int, env_id: str, task_id: str, trial: int) -> int:
    """The seed of one episode: the same in every run and every worker, different per trial."""
    return zlib.crc32(f"{seed}:{env_id}:{task_id}:{trial}".encode())


def run_evaluation(
    env_ids: list[str],
    agent_factory: AgentFactory,
    out: str | Path,
    *,
    agent_name: str = "agent",
    split: str = "test",
    trials: int = 1,
    workers: int = 1,
    seed: int = 0,
    progress: bool = True,
    ray: bool | str = False,
    user_factory: Callable[[], Any] | None = None,
) -> dict[str, Any]:
    """Play `trials` episodes of every task of the split in each env, `workers` at a time;
    append each episode to `out/episodes.jsonl` as it finishes (episodes already there are not
    played again), then write `out/report.json`, `out/report.md` and PNG plots. Returns the
    report.

    `ray`: False plays in this process or in `workers` local processes; True or an address
    (`auto`, `HOST:PORT`, `ray://HOST:PORT`, `local`; see `envfactory_gym.distributed.RayAddress`)
    plays on `workers` Ray actors (0: one per CPU of the cluster), each building the agent once
    with `agent_factory`. Same records, same journal, same resume, same report either way.
    `user_factory` builds each worker's user simulator (an `LLMUser`, say); None: scripted."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "episodes.jsonl"
    done = {(r["env"], r["task_id"], r["trial"]): r for r in read_episodes(journal)}
    jobs = []
    for env_id in env_ids:
        for task in load_package(package_name(env_id)).tasks_for(split):
            for trial in range(trials):
                if (env_id, task.id, trial) not in done:
                    job_seed = episode_seed(seed, env_id, task.id, trial)
                    jobs.append((env_id, task.id, trial, job_seed))
    bar = tqdm(total=len(done) + len(jobs), initial=len(done), desc=f"eval {agent_name}",
               unit="episode", disable=not progress)  # fmt: skip
    successes, finished = sum(r["success"] for r in done.values()), len(done)
    cut = journal.is_file() and not journal.read_bytes().endswith(b"\n") and journal.stat().st_size
    with journal.open("a", encoding="utf-8") as handle:
        if cut:
            handle.write("\n")  # end the line a kill cut off, so the next record is whole
        for record in _play(jobs, agent_factory, workers, ray, user_factory):
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            done[(record["env"], record["task_id"], record["trial"])] = record
            successes, finished = successes + record["success"], finished + 1
            bar.update()
            bar.set_postfix(success=f"{successes / finished:.3f}", refresh=False)
    bar.close()
    records = [done[key] for key in sorted(done) if key[0] in env_ids]
    report = {
        "agent": agent_name,
        "split": split,
        "trials": trials,
        "seed": seed,
        **summarize(records, trials),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown_report(report))
    report["plots"] = write_plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report


def read_episodes(journal: Path) -> list[dict[str, Any]]:
    """The episodes a run has finished; a line cut off by a kill is skipped (it is played again)."""
    if not journal.is_file():
        return []
    records = []
    for line in journal.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


_WORKER_AGENT: EpisodeAgent | None = None
_WORKER_USER: Callable[[], Any] | None = None
_WORKER_ENVS: dict[str, gym.Env] = {}


def play_one(job: tuple[str, str, int, int]) -> dict[str, Any]:
    """One job's episode record, on this worker's env for the job's env id (made on first use)."""
    env_id, task_id, trial, seed = job
    if env_id not in _WORKER_ENVS:
        user = {"user": _WORKER_USER()} if _WORKER_USER else {}
        _WORKER_ENVS[env_id] = gym.make(env_id, **user)
    assert _WORKER_AGENT is not None
    return run_episode(_WORKER_ENVS[env_id], _WORKER_AGENT, task_id, seed, trial)


def start_worker(
    agent_factory: AgentFactory, user_factory: Callable[[], Any] | None = None
) -> None:
    """Make this process an evaluation worker: the agent built once, envs made with the user
    `user_factory` builds (scripted when None)."""
    global _WORKER_AGENT, _WORKER_USER
    import envfactory_gym  # noqa: F401 - registers the envs in a spawned worker

    _WORKER_AGENT = agent_factory()
    _WORKER_USER = user_factory


def _play(
    jobs: list[tuple[str, str, int, int]],
    agent_factory: AgentFactory,
    workers: int,
    ray: bool | str = False,
    user_factory: Callable[[], Any] | None = None,
) -> Iterable[dict[str, Any]]:
    """Each job's record as it finishes: in this process, in `workers` processes, or (`ray` set)
    on `workers` Ray actors (see `run_evaluation`)."""
    if ray is not False:
        from envfactory_gym.distributed import play_on_ray

        yield from play_on_ray(jobs, agent_factory, workers, ray, user_factory=user_factory)
        return
    if workers <= 1 or len(jobs) <= 1:
        start_worker(agent_factory, user_factory)
        try:
            yield from (play_one(job) for job in jobs)
        finally:
            for env in _WORKER_ENVS.values():
                env.close()
            _WORKER_ENVS.clear()
        return
    chunks = max(1, min(64, len(jobs) // (workers * 4)))
    start = (agent_factory, user_factory)
    with ProcessPoolExecutor(workers, initializer=start_worker, initargs=start) as pool:
        pending = [pool.submit(play_chunk, jobs[i : i + chunks])
                   for i in range(0, len(jobs), chunks)]  # fmt: skip
        for future in as_completed(pending):
            yield from future.result()


def play_chunk(jobs: list[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
    """The records of a chunk of jobs, played in order by this process's worker (`start_worker`
    ran first): what a local worker process and a Ray actor both do."""
    return [play_one(job) for job in jobs]


# ----- the report -------------------------------------------------------------------------------
def pass_hat_k(successes: int, trials: int, k: int) -> float:
    """tau-bench's pass^k for one task: C(c, k) / C(n, k), the chance that k of its n trials,
    drawn without replacement, all succeed."""
    if k > trials:
        raise ValueError(f"pass^{k} needs at least {k} trials per task, not {trials}")
    return math.comb(successes, k) / math.comb(trials, k)


def _interval(values: list[float], seed: int = 0, resamples: int = 1000) -> list[float]:
    """95% bootstrap interval of the mean of `values` (one value per task)."""
    if not values:
        return [0.0, 0.0]
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(rng.choices(values, k=n)) / n for _ in range(resamples))
    return [round(means[int(0.025 * resamples)], 4), round(means[int(0.975 * resamples) - 1], 4)]


def _group_summary(records: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    by_task: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_task[(record["env"], record["task_id"])].append(record)
    complete = {key: runs for key, runs in by_task.items() if len(runs) >= trials}
    pass_k = {}
    for k in range(1, trials + 1):
        per_task = [pass_hat_k(sum(r["success"] for r in runs[:trials]), trials, k)
                    for runs in complete.values()]  # fmt: skip
        mean = sum(per_task) / len(per_task) if per_task else 0.0
        pass_k[str(k)] = {"value": round(mean, 4), "ci95": _interval(per_task, seed=k)}
    calls = sum(r["calls"] for r in records)
    tokens = [r["tokens"] for r in records if r.get("tokens") is not None]
    failures = Counter(r["failure"] for r in records if r["failure"])
    n = len(records) or 1
    return {
        "tasks": len(by_task),
        "episodes": len(records),
        "pass@1": pass_k.get("1", {"value": 0.0})["value"],
        "pass^k": pass_k,
        "mean_reward": round(sum(r["reward"] for r in records) / n, 4),
        "breakdown": {
            part: round(sum(r["breakdown"][part] for r in records) / n, 4) for part in BREAKDOWN
        },
        "tool_call_validity": round(
            1.0 - sum(r["malformed_calls"] for r in records) / calls, 4
        ) if calls else None,
        "mean_turns": round(sum(r["turns"] for r in records) / n, 2),
        "mean_tokens": round(sum(tokens) / len(tokens), 1) if tokens else None,
        "failures": {name: failures[name] for name in FAILURES if failures[name]},
    }  # fmt: skip


def summarize(records: list[dict[str, Any]], trials: int) -> dict[str, Any]:
    """The report's numbers: overall, per domain and per env (see `_group_summary`)."""
    envs = sorted({r["env"] for r in records})
    domains = sorted({r["domain"] for r in records})
    return {
        "overall": _group_summary(records, trials),
        "domains": {d: _group_summary([r for r in records if r["domain"] == d], trials)
                    for d in domains},
        "envs": {e: _group_summary([r for r in records if r["env"] == e], trials) for e in envs},
    }  # fmt: skip


def markdown_report(report: dict[str, Any]) -> str:
    """The report as a short Markdown summary: overall, per domain, per env, failures."""
    k = report["trials"]
    head = (f"| | tasks | episodes | pass@1 (95% CI) | pass^{k} | mean reward | valid calls "
            "| turns |")  # fmt: skip
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"

    def row(name: str, s: dict[str, Any]) -> str:
        one, last = s["pass^k"]["1"], s["pass^k"][str(k)]
        validity = "" if s["tool_call_validity"] is None else f"{s['tool_call_validity']:.3f}"
        return (
            f"| {name} | {s['tasks']} | {s['episodes']} | {one['value']:.3f} "
            f"({one['ci95'][0]:.3f}-{one['ci95'][1]:.3f}) | {last['value']:.3f} | "
            f"{s['mean_reward']:.3f} | {validity} | {s['mean_turns']:.1f} |"
        )

    overall = report["overall"]
    lines = [
        f"# Evaluation: {report['agent']}",
        "",
        f"Split `{report['split']}`, {k} trial(s) per task, seed {report['seed']}. pass^k as "
        "tau-bench defines it: C(c, k) / C(n, k) per task, averaged over tasks.",
        "",
        head,
        rule,
        row("**all**", overall),
        *(row(domain, s) for domain, s in report["domains"].items()),
        "",
        "## Per env",
        "",
        head,
        rule,
        *(row(f"`{env}`", s) for env, s in report["envs"].items()),
        "",
        "## Failures",
        "",
    ]
    if overall["failures"]:
        lines += ["| category | episodes |", "| --- | ---: |"]
        lines += [f"| {name} | {count} |" for name, count in overall["failures"].items()]
    else:
        lines.append("No episode failed.")
    parts = ", ".join(f"{p} {v:.3f}" for p, v in overall["breakdown"].items())
    lines += ["", f"Mean reward breakdown: {parts}."]
    return "\n".join(lines) + "\n"


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    """success_by_env.png, pass_k.png and failures.png (matplotlib, the `plot` extra); none
    without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    envs = report["envs"]
    names = [e.removeprefix("envfactory/") for e in envs]
    values = [s["pass@1"] for s in envs.values()]
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.22 * len(names) + 1)))
    ax.barh(names[::-1], values[::-1], color="#4C72B0")
    ax.set_xlim(0, 1)
    ax.set_xlabel("pass@1")
    agent = report["agent"].rsplit(":", 1)[-1]  # a class path's class name
    ax.set_title(f"{agent}: success per env ({report['split']} split)")
    ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(out / "success_by_env.png", dpi=120)
    plt.close(fig)
    written.append("success_by_env.png")

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ks = [int(k) for k in report["overall"]["pass^k"]]
    for name, summary in [("all", report["overall"]), *report["domains"].items()]:
        ys = [summary["pass^k"][str(k)]["value"] for k in ks]
        ax.plot(ks, ys, marker="o", label=name, linewidth=2.5 if name == "all" else 1)
    ax.set_xticks(ks)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k")
    ax.set_ylabel("pass^k")
    ax.set_title("pass^k against k")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "pass_k.png", dpi=120)
    plt.close(fig)
    written.append("pass_k.png")

    failures = report["overall"]["failures"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    labels = list(FAILURES)
    ax.barh(labels[::-1], [failures.get(name, 0) for name in labels][::-1], color="#C44E52")
    ax.set_xlabel("failed episodes")
    ax.set_title("Failure categories")
    fig.tight_layout()
    fig.savefig(out / "failures.png", dpi=120)
    plt.close(fig)
    written.append("failures.png")
    return written
