"""The grounding checker: a task's instruction says what a user would say, and no more.

Per task (`check_task`):
- no tool name appears in the instruction;
- no id the agent could look up appears in it (a primary-key value of any table, unless the
  user really knows it: it is one of their facts);
- every ground-truth argument value has a source: the instruction (as people write it: 'June 3'
  for 2025-06-03, '$12.50', 'wrong item' for wrong_item), the user's facts, or the output of an
  earlier call;
- every row the agent must pick out of a list is described in the instruction.
Per task set (`check_task_set`): no two tasks share an instruction or a ground truth, and the
splits are balanced (each kind in train has its test share).
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime
from typing import Any

from envfactory_gym.database import quote_name, user_tables
from envfactory_gym.distractors import leaves
from envfactory_gym.package import EnvPackage
from envfactory_gym.replay import replay
from envfactory_gym.tasks import Task

TEST_SHARE = (0.15, 0.4)
"""The test split's share of all tasks must fall in this range."""


class GroundingError(ValueError):
    """A task that fails the grounding checker; the message starts with the rule it breaks."""


def spoken(value: Any, style: str | None = None) -> str:
    """A value as a person writes it: `date` 'June 3', `time` '2:30 PM', `datetime` 'June 3 at
    2:30 PM', `money` '$12.50', `words` 'wrong item' (for wrong_item); plain otherwise."""
    if value is None:
        return ""
    text = str(value)
    if style in ("date", "datetime", "time"):
        moment = _moment(text)
        if moment is None:
            return text
        day = f"{moment:%B} {moment.day}"
        clock = f"{moment.hour % 12 or 12}:{moment:%M} {'AM' if moment.hour < 12 else 'PM'}"
        return {"date": day, "time": clock, "datetime": f"{day} at {clock}"}[style]
    if style == "money":
        return f"${float(value):,.2f}"
    if style == "words":
        return text.replace("_", " ")
    return text


def renderings(value: Any) -> set[str]:
    """Every way `spoken` may have written a value, folded to lower case."""
    forms = {str(value)}
    if isinstance(value, str):
        forms.add(value.replace("_", " "))
        if _moment(value) is not None:
            forms |= {spoken(value, "date"), spoken(value, "datetime")}
    if isinstance(value, int | float) and not isinstance(value, bool):
        forms |= {f"{value:,.2f}", f"{value:,}", f"{value:g}"}
    return {form.casefold() for form in forms if form}


def _moment(text: str) -> datetime | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2})?)?", text):
        return None
    try:
        return (
            datetime.fromisoformat(text)
            if "T" in text
            else datetime.combine(date.fromisoformat(text), datetime.min.time())
        )
    except ValueError:
        return None


def key_values(package: EnvPackage) -> set[str]:
    """Every primary-key value in the start state, as text: the ids an agent can look up."""
    conn = package.template
    found: set[str] = set()
    for table in user_tables(conn):
        info = conn.execute(f"PRAGMA table_info({quote_name(table)})")
        keys = [row[1] for row in info if row[5] > 0]
        if len(keys) == 1:
            sql = f"SELECT {quote_name(keys[0])} FROM {quote_name(table)}"
            found |= {str(v) for (v,) in conn.execute(sql)}
    return found


def check_task(
    package: EnvPackage,
    task: Task,
    results: list[Any] | None = None,
    described: list[str] | tuple[str, ...] = (),
    keys: set[str] | None = None,
) -> None:
    """Raise `GroundingError` if the task breaks a rule; `results` are its calls' outputs
    (replayed if not given), `described` the phrases the instruction must hold, `keys` the
    look-up-able ids (computed from the package if not given)."""
    text = task.instruction.casefold()
    for name in package.tools:
        if re.search(rf"\b{re.escape(name.casefold())}\b", text):
            raise GroundingError(f"names a tool: the instruction says {name!r}")
    facts = {v.casefold() for v in task.user_facts.values()}
    for word in re.findall(r"[A-Za-z0-9_-]*\d[A-Za-z0-9_-]*", task.instruction):
        if (
            word in (keys if keys is not None else key_values(package))
            and word.casefold() not in facts
        ):
            raise GroundingError(f"leaks an id: {word!r} is a key the agent must look up")
    if results is None:
        results = replay(package, task.calls).results
    sources = [text, *facts]
    for index, call in enumerate(task.calls):
        earlier = {str(v).casefold() for _, v in leaves(results[:index])}
        for argument, value in call.arguments.items():
            if argument in call.masked:
                continue
            for _, leaf in leaves([value]):
                forms = renderings(leaf)
                if forms & earlier:
                    continue
                if not any(form in source for form in forms for source in sources):
                    raise GroundingError(
                        f"ungrounded argument: {call.name}.{argument} = {leaf!r} is not in the "
                        "instruction, the user's facts or an earlier tool output"
                    )
    for phrase in described:
        if phrase.casefold() not in text:
            raise GroundingError(f"ambiguous: the instruction does not describe {phrase!r}")


def check_task_set(tasks: list[Task]) -> list[str]:
    """Set-level problems: duplicate instructions or ground truths, unbalanced splits."""
    problems = []
    instructions = Counter(task.instruction for task in tasks)
    problems += [
        f"duplicate instruction: {text[:80]!r}" for text, n in instructions.items() if n > 1
    ]
    truths = Counter(repr([c.model_dump() for c in task.calls]) for task in tasks)
    problems += [f"{n} tasks share one ground truth" for _, n in truths.items() if n > 1]
    if tasks:
        share = sum(task.split == "test" for task in tasks) / len(tasks)
        low, high = TEST_SHARE
        if not low <= share <= high:
            problems.append(f"test split is {share:.0%} of tasks; expected {low:.0%}-{high:.0%}")
        train_kinds = {t.kind for t in tasks if t.split == "train"}
        test_kinds = {t.kind for t in tasks if t.split == "test"}
        problems += [f"kind {k!r} has no test tasks" for k in sorted(train_kinds - test_kinds)]
    return problems
