"""Benchmarks of an env on one core: every tool's step beside the bare tool call and beside
only the SQL it runs, reset, reward, scripted episodes per second, at 1x and larger databases;
vector envs; memory per instance.

Each timing is the best of `rounds` rounds, each round the median of `repeats` runs: the best
round filters out noise from other processes on a shared machine. The rounds take turns (each
times every figure once), so that a burst of noise spoils one round of a figure, not all.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from tqdm import tqdm

from envfactory_gym.actions import format_tool_call
from envfactory_gym.database import Database
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.registry import package_name
from envfactory_gym.tasks import Task, ToolCall
from envfactory_gym.tools import Tool


def _median_us(
    fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None
) -> float:
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1000


def _call_and_undo(db: Database, run: Callable[[], Any]) -> None:
    """Run `run` as one tool call on `db` (a failure counts like any outcome), then reset `db`."""
    try:
        with db.call():
            run()
    except Exception:  # noqa: BLE001 - a failing call is timed like any other
        pass
    db.reset()


def _best_of_rounds(
    measures: dict[tuple[str, ...], Callable[[], float]], rounds: int
) -> dict[tuple[str, ...], float]:
    """The lowest value of each measure over `rounds` rounds, each round taking every measure
    once in turn: a burst of noise on the machine spoils one round of a figure, not all."""
    best: dict[tuple[str, ...], float] = {}
    for _ in tqdm(range(rounds), desc="bench rounds", leave=False, disable=None):
        for key, measure in measures.items():
            value = measure()
            best[key] = min(best.get(key, value), value)
    return best


def workload(package: EnvPackage) -> tuple[Task, list[str], dict[str, ToolCall]]:
    """The bench task (the first with a write), its scripted 10-call episode (the task's calls,
    then its reads again, then a final answer), and one ground-truth call per tool."""
    task = next(t for t in package.tasks if t.writes)
    reads = [c for c in task.calls if package.tools[c.name].kind != "write"]
    script = (task.calls + reads * 10)[:10]
    episode = [format_tool_call(c.name, c.arguments) for c in script] + ["Done."]
    calls: dict[str, ToolCall] = {}
    for each in package.tasks:
        for call in each.calls:
            calls.setdefault(call.name, call)
    for name, tool in package.tools.items():  # a tool no task calls borrows covering arguments
        wanted = set(tool.parameters.get("required", []))
        donor = next((c for c in calls.values() if wanted <= set(c.arguments)), None)
        if name not in calls and donor is not None:
            known = set(tool.parameters.get("properties", {}))
            arguments = {k: v for k, v in donor.arguments.items() if k in known}
            calls[name] = ToolCall(name=name, arguments=arguments)
    return task, episode, dict(sorted(calls.items()))


def bench(
    env_id: str,
    scale: int = 1,
    repeats: int = 2000,
    episodes: int = 300,
    rounds: int = 5,
    memory: bool = True,
) -> dict[str, Any]:
    """Time the hot paths of `env_id` over a database `scale` times the shipped one."""
    package = load_package(package_name(env_id))
    if scale != 1:
        package = package.at_scale(scale)
    env = ToolUseEnv(package, split="all")
    task, episode, calls = workload(package)
    options = {"task_id": task.id}
    write = next(c for c in task.calls if package.tools[c.name].kind == "write")

    def fresh() -> None:
        env.reset(options=options)

    def dirty() -> None:
        fresh()
        env.step(format_tool_call(write.name, write.arguments))

    def played() -> None:
        fresh()
        for call in task.calls:
            env.step(format_tool_call(call.name, call.arguments))

    def us_per_episode() -> float:
        start = time.perf_counter_ns()
        for _ in range(episodes):
            fresh()
            for action in episode:
                env.step(action)
        return (time.perf_counter_ns() - start) / 1000 / episodes

    measures: dict[tuple[str, ...], Callable[[], float]] = {}
    statement_counts: dict[str, int] = {}
    bare = Database(package.template)
    for name, call in calls.items():
        action = format_tool_call(name, call.arguments)
        tool = package.tools[name]
        arguments = tool.validate(call.arguments)

        def alone(tool=tool, arguments=arguments) -> None:
            _call_and_undo(bare, lambda: tool(bare, **arguments))

        statements = tool_statements(bare, tool, arguments)
        statement_counts[name] = len(statements)

        def replay(statements=statements) -> None:
            for method, sql, params in statements:
                getattr(bare.conn, method)(sql, params).fetchall()

        def sql_alone(replay=replay) -> None:
            _call_and_undo(bare, replay)

        measures[("tools", name, "step_us")] = (
            lambda a=action: _median_us(lambda: env.step(a), repeats, fresh)
        )  # fmt: skip
        measures[("tools", name, "tool_alone_us")] = lambda f=alone: _median_us(f, repeats)
        measures[("tools", name, "sql_alone_us")] = lambda f=sql_alone: _median_us(f, repeats)
    measures[("reset_us",)] = lambda: _median_us(fresh, repeats, dirty)
    measures[("reward_us",)] = lambda: _median_us(env.score, repeats, played)
    measures[("us_per_episode",)] = us_per_episode
    best = _best_of_rounds(measures, rounds)

    tools: dict[str, dict[str, Any]] = {
        name: {
            "step_us": best[("tools", name, "step_us")],
            "tool_alone_us": best[("tools", name, "tool_alone_us")],
            "sql_alone_us": best[("tools", name, "sql_alone_us")],
            "statements": statement_counts[name],
            "kind": package.tools[name].kind,
        }
        for name in calls
    }
    read = next(c for c in task.calls if package.tools[c.name].kind != "write")
    result: dict[str, Any] = {
        "env": env_id,
        "scale": scale,
        "rows": _rows(package.template),
        "read_step_us": tools[read.name]["step_us"],
        "write_step_us": tools[write.name]["step_us"],
        "reset_us": best[("reset_us",)],
        "reward_us": best[("reward_us",)],
        "episodes_per_s_10_calls": 1e6 / best[("us_per_episode",)],
        "tools": tools,
        "workload": {"task": task.id, "read": read.name, "write": write.name},
    }
    if memory:
        per_instance, size = _memory_per_instance(package.template)
        result |= {
            "db_bytes": size,
            "memory_per_instance_bytes": round(per_instance),
            "memory_ratio": round(per_instance / size, 2),
        }
    env.close()
    bare.close()
    return result


class _StatementLog:
    """Stands in for a `Database`'s connection and logs each statement run through it, with
    its parameters; everything else goes to the connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.log: list[tuple[str, str, Any]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        self.log.append(("execute", sql, params))
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, params: Any) -> sqlite3.Cursor:
        params = list(params)
        self.log.append(("executemany", sql, params))
        return self.conn.executemany(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def tool_statements(
    db: Database, tool: Tool, arguments: dict[str, Any]
) -> list[tuple[str, str, Any]]:
    """The SQL statements (method, text, parameters) one call of `tool` runs on `db`, in order,
    without the savepoints around it; `db` is reset after. Replayed alone (every row fetched),
    they are the floor under the tool: its SQL, with the change-log triggers, and none of its
    Python. Statements sent through `db.conn.execute` and `executemany` are seen, which is how
    `Database` and the shipped tools run every statement."""
    log = _StatementLog(db.conn)
    db.conn = log  # type: ignore[assignment]
    try:  # a failing call's statements up to the failure count
        _call_and_undo(db, lambda: tool(db, **arguments))
    finally:
        db.conn = log.conn
    boundaries = ("SAVEPOINT", "RELEASE", "ROLLBACK")
    return [entry for entry in log.log if not entry[1].lstrip().upper().startswith(boundaries)]


def bench_vector(
    env_id: str,
    mode: str,
    num_envs: int,
    episodes: int = 200,
    rounds: int = 3,
    num_workers: int = 0,
    step_here: bool = True,
) -> dict[str, Any]:
    """Scripted episodes per second through `gym.make_vec` against one plain env, same work.
    `mode` is sync, async or pool (our `EnvPool`, with `num_workers` worker processes and, with
    `step_here`, this process stepping a share too)."""
    package = load_package(package_name(env_id))
    task, episode, _ = workload(package)
    options = {"task_id": task.id}

    def single() -> float:  # seconds per episode
        env = gym.make(env_id)
        start = time.perf_counter()
        for _ in range(episodes):
            env.reset(options=options)
            for action in episode:
                env.step(action)
        env.close()
        return (time.perf_counter() - start) / episodes

    steps_here = None

    def vector() -> float:  # seconds per episode, as `single`
        nonlocal steps_here
        if mode == "pool":
            envs = gym.make_vec(env_id, num_envs=num_envs, num_workers=num_workers,
                                step_here=step_here,
                                vectorization_mode="vector_entry_point")  # fmt: skip
            steps_here = envs.steps_here
        else:
            envs = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
        envs.reset(options=options)
        start = time.perf_counter()
        for _ in range(max(1, episodes // num_envs)):
            envs.reset(options=options)
            for action in episode:
                envs.step([action] * num_envs)
        done = max(1, episodes // num_envs) * num_envs
        seconds = time.perf_counter() - start
        envs.close()
        return seconds / done

    best = _best_of_rounds({("single",): single, ("vector",): vector}, rounds)
    one, many = 1 / best[("single",)], 1 / best[("vector",)]
    return {
        "env": env_id,
        "mode": mode,
        "num_envs": num_envs,
        "num_workers": num_workers if mode == "pool" else None,
        "step_here": steps_here,
        "single_episodes_per_s": round(one, 1),
        "vector_episodes_per_s": round(many, 1),
        "speedup": round(many / one, 2),
    }


def _rows(conn: sqlite3.Connection) -> int:
    from envfactory_gym.database import user_tables

    return sum(conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in user_tables(conn))


def _memory_per_instance(template: Any, copies: int = 40) -> tuple[float, int]:
    """Resident memory one more env database costs, measured in a fresh process."""
    code = (
        "import gc, sqlite3, sys\n"
        "def rss():\n"
        "    return int(open('/proc/self/statm').read().split()[1]) * 4096\n"
        "source = sqlite3.connect(sys.argv[1])\n"
        "size = source.execute('PRAGMA page_count').fetchone()[0] * "
        "source.execute('PRAGMA page_size').fetchone()[0]\n"
        "gc.collect(); before = rss(); dbs = []\n"
        f"for _ in range({copies}):\n"
        "    db = sqlite3.connect(':memory:'); source.backup(db); dbs.append(db)\n"
        "print((rss() - before) / len(dbs), size)\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/template.db"
        disk = sqlite3.connect(path)
        template.backup(disk)
        disk.close()
        out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True)
    per_instance, size = out.stdout.split()
    return float(per_instance), int(size)


SUITE_PROBE = """
import json, sys, time
start = time.perf_counter()
import envfactory_gym
imported = time.perf_counter() - start
import gymnasium as gym
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
before = rss()
start = time.perf_counter()
envs = []
for env_id in envfactory_gym.ENV_IDS:
    env = gym.make(env_id)
    env.reset(seed=0)
    envs.append(env)
made = time.perf_counter() - start
print(json.dumps({"envs": len(envs), "import_s": imported, "make_all_s": made,
                  "rss_before_bytes": before, "rss_bytes": rss()}))
"""


def bench_suite(repeats: int = 3) -> dict[str, Any]:
    """The whole registry in fresh processes: `import envfactory_gym` time (best of `repeats`),
    then one instance of every env made and reset, with the process's resident memory."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run(
            [sys.executable, "-c", SUITE_PROBE], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(done.stdout.splitlines()[-1]))
    best = min(runs, key=lambda r: r["import_s"])
    return {
        "envs": best["envs"],
        "import_s": round(best["import_s"], 3),
        "make_and_reset_all_s": round(min(r["make_all_s"] for r in runs), 2),
        "rss_after_import_mib": round(best["rss_before_bytes"] / 2**20, 1),
        "rss_with_every_env_mib": round(min(r["rss_bytes"] for r in runs) / 2**20, 1),
    }


def format_table(results: list[dict[str, Any]]) -> str:
    """One column per scale: every tool's step (and the bare tool call), reset, reward,
    episodes per second, memory."""
    head = ["measure"] + [f"{r['scale']}x ({r['rows']:,} rows)" for r in results]
    rows = []
    for name, first in results[0]["tools"].items():
        rows.append(
            [f"step {name} ({first['kind']})"]
            + [f"{r['tools'][name]['step_us']:.1f} us ({r['tools'][name]['tool_alone_us']:.1f}; "
               f"SQL {r['tools'][name]['sql_alone_us']:.1f})" for r in results]
        )  # fmt: skip
    rows.append(["reset after a write"] + [f"{r['reset_us']:.1f} us" for r in results])
    rows.append(["reward"] + [f"{r['reward_us']:.1f} us" for r in results])
    rows.append(
        ["scripted 10-call episodes"] + [f"{r['episodes_per_s_10_calls']:,.0f} /s" for r in results]
    )
    if "memory_per_instance_bytes" in results[0]:
        rows.append(
            ["memory per instance"]
            + [f"{r['memory_per_instance_bytes'] / 2**20:.2f} MiB ({r['memory_ratio']}x db)"
               for r in results]
        )  # fmt: skip
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    lines = [" | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
             for row in [head, *rows]]  # fmt: skip
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines) + (
        "\n(in parentheses: the tool function alone on the database, then only the SQL it runs)"
    )


def require_matplotlib() -> Any:
    """`matplotlib.pyplot` on the Agg backend, or a `SystemExit` that says how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--png needs matplotlib: pip install 'envfactory-gym[plot]'") from None
    return plt


def plot_scales(results: list[dict[str, Any]], path: str) -> None:
    """The step, reset and reward figures of `format_table` as a chart: per operation one bar
    per database scale, on a log axis, so a flat operation shows as bars of one length. Needs
    matplotlib (the `plot` extra)."""
    plt = require_matplotlib()
    first = results[0]
    labels = [f"{name} ({tool['kind']})" for name, tool in first["tools"].items()]
    labels += ["reset after a write", "reward"]

    def figures(result: dict[str, Any]) -> list[float]:
        steps = [tool["step_us"] for tool in result["tools"].values()]
        return steps + [result["reset_us"], result["reward_us"]]

    height = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(labels) + 1.4))
    for index, result in enumerate(results):
        offsets = [row - 0.4 + height * (index + 0.5) for row in range(len(labels))]
        ax.barh(offsets, figures(result), height=height,
                label=f"{result['scale']}x ({result['rows']:,} rows)")  # fmt: skip
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("microseconds (log scale; env.step for tools)")
    ax.set_title(f"{first['env']}: one core, as the database grows")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
