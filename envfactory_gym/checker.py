"""The per-task contract every env package meets, runnable by anyone: `check_package(env)`.

For every task, with scripted agents playing real episodes:

- `replay`: the ground-truth calls succeed and reproduce the expected diff and allowed writes;
- `outputs_grounded`: every required output is a value the ground truth's tool outputs hold;
- `oracle`: the oracle (ground truth, then the required outputs) scores 1.0;
- `no_tools`: an agent that answers without calling a tool scores 0;
- `collateral`: the ground truth plus one write the task does not expect scores 0 and names
  the row in `violations`;
- `listing`: the ground truth plus a message listing every value seen in the tool outputs gets
  no outputs credit;
- `not_presatisfied`: a task that expects a write does not already hold in the start state;

and once per package, `indexed`: no statement the ground truth runs scans a whole table to find
rows (SQLite's `EXPLAIN QUERY PLAN` says `SCAN <table>` for a statement with a WHERE clause),
so every tool stays fast as the data grows. A search for words inside text (`instr`, `LIKE`)
reads the rows it searches by nature and is exempt.

`envfactory check ENV` runs it from the shell and exits non-zero naming each failure.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import BaseModel, Field

from envfactory_gym.actions import format_tool_call
from envfactory_gym.database import comparable_diff
from envfactory_gym.distractors import leaves
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.replay import replay
from envfactory_gym.reward import RewardBreakdown, outputs_stated
from envfactory_gym.tasks import Task, ToolCall

CHECKS = (
    "replay", "outputs_grounded", "oracle", "no_tools", "collateral", "listing",
    "not_presatisfied", "indexed",
)  # fmt: skip
NO_TOOLS_ANSWER = "I have taken care of everything you asked for. Anything else?"


class Problem(BaseModel):
    """One failed check of one task."""

    task_id: str
    check: str
    detail: str


class CheckReport(BaseModel):
    """What `check_package` found: the failures, and what could not be tried."""

    env: str
    tasks: int
    checks_run: dict[str, int] = Field(description="How many tasks each check ran on.")
    problems: list[Problem] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Checks that could not run.")
    seconds: float

    @property
    def ok(self) -> bool:
        return not self.problems


def check_package(package: str | EnvPackage) -> CheckReport:
    """Run every check on every task of an env package (a name, folder or `EnvPackage`)."""
    if isinstance(package, str):
        from envfactory_gym.registry import package_name

        registered = package.startswith("envfactory/")
        package = load_package(package_name(package) if registered else package)
    start = time.perf_counter()
    env = ToolUseEnv(package, split="all")
    writes = _write_calls(package)
    problems: list[Problem] = []
    notes: list[str] = []
    runs = dict.fromkeys(CHECKS, 0)
    for task in package.tasks:
        for check, outcome in check_task(env, task, writes):
            runs[check] += outcome is not None
            if outcome is None:
                notes.append(f"{task.id}: {check} could not run (no collateral write found)")
            elif outcome:
                problems.append(Problem(task_id=task.id, check=check, detail=outcome))
    runs["indexed"] = 1
    problems += [
        Problem(task_id="*", check="indexed", detail=scan) for scan in table_scans(package)
    ]
    env.close()
    return CheckReport(
        env=package.config.gym_id,
        tasks=len(package.tasks),
        checks_run=runs,
        problems=problems,
        notes=notes,
        seconds=round(time.perf_counter() - start, 3),
    )


def check_task(
    env: ToolUseEnv, task: Task, collateral_writes: list[ToolCall]
) -> list[tuple[str, str | None]]:
    """(check, failure detail: '' if it passed, None if it could not run) for one task."""
    results: list[tuple[str, str | None]] = []
    try:
        replayed = replay(env.package, task.calls)
    except Exception as exc:  # any failure of the ground truth is the finding
        return [("replay", f"the ground truth does not replay: {type(exc).__name__}: {exc}")]
    detail = ""
    if comparable_diff(replayed.diff) != task.expected_state:
        detail = "replaying the ground truth gives a different diff than expected_diff"
    elif replayed.written != task.allowed_writes:
        detail = f"allowed_writes {task.allowed_writes} != rows written {replayed.written}"
    results.append(("replay", detail))
    seen_values = _seen_values(replayed.results)
    if task.outputs:
        seen = "\n".join(seen_values)
        missing = [o for o in task.outputs if outputs_stated([o], seen, 0.0) < 1.0]
        results.append(
            ("outputs_grounded", f"not in any tool output: {missing}" if missing else "")
        )

    ground_truth = [format_tool_call(c.name, c.arguments) for c in task.calls]
    answer = _answer(task)
    oracle = play(env, task, [*ground_truth, answer])
    results.append(("oracle", "" if oracle.total == 1.0 else f"oracle scored {oracle.total:.3f}"))

    silent = play(env, task, [NO_TOOLS_ANSWER])
    results.append(("no_tools", "" if silent.total == 0.0 else f"scored {silent.total:.3f}"))

    results.append(("collateral", _check_collateral(env, task, ground_truth, collateral_writes)))

    if task.outputs:
        listing = "Here is everything I found: " + "; ".join(seen_values)
        listed = play(env, task, [*ground_truth, listing])
        results.append(
            ("listing", "" if listed.outputs == 0.0 else f"outputs credit {listed.outputs:.2f}")
        )

    if task.kind in ("write", "multi_write"):
        results.append(
            ("not_presatisfied", "" if task.writes else "the start state already satisfies it")
        )
    return results


def play(env: ToolUseEnv, task: Task, actions: list[str]) -> RewardBreakdown:
    """Reset to `task`, send the actions in order (stopping when the episode ends), and return
    the episode's reward breakdown."""
    env.reset_to(task)
    for action in actions:
        *_, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    else:
        env.done = True
        env.last_reward = env.score()
    assert env.last_reward is not None
    return env.last_reward


def _check_collateral(
    env: ToolUseEnv, task: Task, ground_truth: list[str], writes: list[ToolCall]
) -> str | None:
    """The first write from another task that succeeds after this task's ground truth and
    writes a row outside its allowed set must void the reward."""
    for call in writes:
        if call in task.calls:
            continue
        actions = [*ground_truth, format_tool_call(call.name, call.arguments), _answer(task)]
        breakdown = play(env, task, actions)
        if not env.calls[-1].ok or not breakdown.violations:
            continue  # the write failed here, or only touched rows the task may write
        if breakdown.total != 0.0:
            return f"scored {breakdown.total:.3f} after the collateral call {call.name}"
        return ""
    return None


def table_scans(package: EnvPackage) -> list[str]:
    """Each statement run by the package's ground-truth calls that scans a table to filter it,
    as 'tool: SCAN table in <statement>' (a composite's on each member's database)."""
    db = package.new_database()
    statements: dict[tuple[str, str], str] = {}  # (database, sql) -> the tool that ran it
    for task in package.tasks:
        db.reset()
        for call in task.calls:
            tool = package.tools[call.name]
            seen: list[tuple[str, str]] = []
            for name, conn in db.connections.items():
                conn.set_trace_callback(lambda sql, name=name, seen=seen: seen.append((name, sql)))
            try:
                with db.call():
                    tool(db, **tool.validate(call.arguments))
            except Exception:  # noqa: BLE001 - the replay check reports failing calls
                pass
            finally:
                for conn in db.connections.values():
                    conn.set_trace_callback(None)
            for where in seen:
                statements.setdefault(where, call.name)
    found: dict[tuple[str, str], str] = {}  # (tool, plan) -> one statement that shows it
    for (name, sql), tool_name in statements.items():
        words = sql.lstrip().split(None, 1)
        if not words or words[0].upper() not in ("SELECT", "UPDATE", "DELETE", "WITH"):
            continue
        if " WHERE " not in sql.upper():
            continue  # a listing of a whole table reads it all by design
        if _TEXT_SEARCH.search(sql):
            continue  # a search for words inside text reads the rows by nature
        for row in db.connections[name].execute("EXPLAIN QUERY PLAN " + sql):
            detail = row[3]
            target = detail.split()[1] if detail.startswith("SCAN ") else "("
            if not target.startswith("(") and target != "CONSTANT":  # a table or its alias
                found.setdefault((tool_name, detail), " ".join(sql.split())[:160])
    db.close()
    return [f"{tool}: {plan} in {sql}" for (tool, plan), sql in sorted(found.items())]


_TEXT_SEARCH = re.compile(r"\binstr\s*\(|\bLIKE\b|\bGLOB\b", re.IGNORECASE)


def _write_calls(package: EnvPackage) -> list[ToolCall]:
    """Every distinct ground-truth call of a write tool, across the package's tasks."""
    seen: dict[str, ToolCall] = {}
    for task in package.tasks:
        for call in task.calls:
            tool = package.tools.get(call.name)
            if tool is not None and tool.kind == "write":
                seen.setdefault(call.model_dump_json(), call)
    return list(seen.values())


def oracle_answer(outputs: list[str]) -> str:
    """The oracle's last message: the required outputs and no other word (a filler word could
    be a distractor: a status called 'done', a setting called 'all')."""
    if outputs:
        return "; ".join(outputs) + "."
    return "All done. I have handled your request according to our policy."


def _answer(task: Task) -> str:
    return oracle_answer(task.outputs)


def _seen_values(results: list[Any]) -> list[str]:
    """Every scalar value in the tool outputs, once each, in order of appearance."""
    values: dict[str, None] = {}
    for _, value in leaves(results):
        values.setdefault(str(value), None)
    return list(values)


def format_report(report: CheckReport) -> str:
    """A short human summary: one line per check, then each failure."""
    lines = [f"{report.env}: {report.tasks} tasks, {report.seconds:.1f} s"]
    failed: dict[str, int] = {}
    for problem in report.problems:
        failed[problem.check] = failed.get(problem.check, 0) + 1
    for check in CHECKS:
        ran = report.checks_run.get(check, 0)
        lines.append(f"  {check:<18} {ran - failed.get(check, 0):>4}/{ran} passed")
    lines += [f"  FAIL {p.task_id} [{p.check}]: {p.detail}" for p in report.problems]
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)
