"""Episode reward: `max(0, tau * trace + (1 - tau) * outcome - penalties)`, from the database,
and 0 for an episode that wrote a row the task does not expect to change.

- trace: the share of ground-truth calls the agent made (masked arguments ignored, numbers
  compared with a tolerance), each agent call matching at most one ground-truth call;
- outcome: the expected final state reached (the episode's whole diff equals the expected diff,
  so a forbidden write fails it and doing nothing fails a task that needs a write) times the share
  of required outputs stated to the user; for a refusal (no write, no output) it is also scaled
  by trace, so doing nothing is not rewarded as a correct refusal;
  The outputs part is 0 when the agent stated one of the task's distractors (a wrong answer a
  guess would list) or more numbers than `max_stated_numbers` beyond the required ones;
- penalties: malformed calls (bad JSON, unknown tool, invalid arguments, empty messages) and
  calls beyond the ground truth plus a free allowance;
- violations: every row the episode changed at any point (restored rows included) that is not
  among the task's allowed writes. One violation makes the total 0: harm earns nothing.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envfactory_gym.database import Diff, comparable_diff
from envfactory_gym.tasks import Task, ToolCall


class RewardConfig(BaseModel):
    """Reward settings; `tau` moves linearly to `tau_final` over `tau_schedule_episodes`."""

    model_config = ConfigDict(extra="forbid")

    tau: float = Field(0.5, ge=0.0, le=1.0, description="Weight of trace match vs. outcome.")
    tau_final: float | None = Field(None, ge=0.0, le=1.0)
    tau_schedule_episodes: int = Field(0, ge=0)
    format_penalty: float = Field(0.1, ge=0.0, description="Per malformed or invalid call.")
    extra_call_penalty: float = Field(0.02, ge=0.0, description="Per call past the allowance.")
    free_extra_calls: int = Field(3, ge=0, description="Calls beyond the ground truth for free.")
    max_penalty: float = Field(1.0, ge=0.0)
    number_tolerance: float = Field(0.01, ge=0.0, description="Relative tolerance for numbers.")
    max_stated_numbers: int = Field(
        3, ge=0, description="Numeric outputs do not count if the agent stated more distinct "
        "numbers than this beyond the required ones: listing candidates is not an answer."
    )  # fmt: skip

    @model_validator(mode="after")
    def _schedule_is_complete(self) -> RewardConfig:
        if (self.tau_final is None) != (self.tau_schedule_episodes == 0):
            raise ValueError("tau_final and tau_schedule_episodes must be set together")
        return self

    def tau_at(self, episode: int) -> float:
        """The trace weight for the given (0-based) episode under the linear schedule."""
        if self.tau_final is None:
            return self.tau
        progress = min(1.0, episode / self.tau_schedule_episodes)
        return self.tau + (self.tau_final - self.tau) * progress


@dataclass(slots=True)
class CallRecord:
    """One call the agent attempted, as the reward sees it."""

    name: str | None
    arguments: Any
    ok: bool
    format_error: bool


class RewardBreakdown(BaseModel):
    trace: float
    state: float
    outputs: float
    outcome: float
    tau: float
    matched_calls: int
    expected_calls: int
    extra_calls: int
    format_errors: int
    penalty: float
    violations: list[str] = Field(
        default_factory=list, description="Rows written that the task does not expect to change."
    )
    distractors_stated: list[str] = Field(
        default_factory=list, description="Wrong answers the agent stated (outputs part voided)."
    )
    total: float
    success: bool


def compute_reward(
    task: Task,
    calls: list[CallRecord],
    said_to_user: list[str],
    diff: Diff,
    config: RewardConfig,
    tau: float | None = None,
    written: set[tuple[str, str]] | None = None,
) -> RewardBreakdown:
    """Score one finished episode. `written` is `Database.written_rows()` (None: not checked)."""
    tau = config.tau if tau is None else tau
    matched = match_calls(task.calls, calls, config.number_tolerance)
    trace = matched / len(task.calls) if task.calls else 1.0
    state = 1.0 if comparable_diff(diff) == task.expected_state else 0.0
    text = "\n".join(said_to_user)
    guessed = stated_distractors(task.distractors, text, config.number_tolerance)
    outputs = 0.0 if guessed else outputs_stated(
        task.outputs, text, config.number_tolerance, config.max_stated_numbers
    )  # fmt: skip
    violations = find_violations(written or set(), task.allowed_rows)
    outcome = state * outputs
    if not task.outputs and task.writes == 0:
        outcome *= trace  # a refusal counts only once the facts the policy needs were checked
    format_errors = sum(1 for call in calls if call.format_error)
    extra = max(0, len(calls) - format_errors - matched)
    penalty = min(
        config.max_penalty,
        config.format_penalty * format_errors
        + config.extra_call_penalty * max(0, extra - config.free_extra_calls),
    )
    total = 0.0 if violations else max(0.0, tau * trace + (1.0 - tau) * outcome - penalty)
    return RewardBreakdown(  # validating these 14 values costs less than model_construct
        trace=trace,
        state=state,
        outputs=outputs,
        outcome=outcome,
        tau=tau,
        matched_calls=matched,
        expected_calls=len(task.calls),
        extra_calls=extra,
        format_errors=format_errors,
        penalty=penalty,
        violations=violations,
        distractors_stated=guessed,
        total=total,
        success=trace == 1.0 and outcome == 1.0 and not violations,
    )


def find_violations(
    written: set[tuple[str, str]], allowed: frozenset[tuple[str, str]], limit: int = 20
) -> list[str]:
    """The rows written outside the allowed set, as 'table key' (at most `limit`, sorted)."""
    rows = sorted(f"{table} {key}" for table, key in written if (table, key) not in allowed)
    return rows if len(rows) <= limit else [*rows[:limit], f"... {len(rows) - limit} more"]


def stated_distractors(distractors: list[str], text: str, tolerance: float) -> list[str]:
    """The distractors the text states: numbers by value, words as whole words."""
    if not distractors or not text:
        return []
    folded = fold(text)
    numbers: list[float] | None = None
    found = []
    for distractor in distractors:
        target = _target_value(distractor)
        if target is not None:
            if numbers is None:
                numbers = stated_numbers(text)
            hit = any(close(n, target, tolerance) for n in numbers)
        else:
            hit = mentions(folded, distractor)
        if hit:
            found.append(distractor)
    return found


def match_calls(expected: list[ToolCall], made: list[CallRecord], tolerance: float) -> int:
    """How many ground-truth calls are matched by distinct successful agent calls."""
    used: set[int] = set()
    for want in expected:
        for index, call in enumerate(made):
            if index in used or not call.ok or call.name != want.name:
                continue
            if all(
                key in want.masked or values_match(value, call.arguments.get(key), tolerance)
                for key, value in want.arguments.items()
            ):
                used.add(index)
                break
    return len(used)


def values_match(expected: Any, actual: Any, tolerance: float) -> bool:
    """Structural equality; numbers within a relative tolerance, strings case- and space-folded."""
    scalar = isinstance(expected, str | int | float)
    if scalar and type(expected) is type(actual) and expected == actual:
        return True  # the usual case, decided without folding or arithmetic
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(expected - actual) <= tolerance * max(1.0, abs(expected))
    if isinstance(expected, str) and isinstance(actual, str):
        return fold(expected) == fold(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            values_match(e, a, tolerance) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            values_match(v, actual[k], tolerance) for k, v in expected.items()
        )
    return expected == actual


_NUMBER = re.compile(r"(?<![\w.\-:])-?\d[\d,]*(?:\.\d+)?(?![\w\-:]|\.\d)")
"""A number as a person writes it ('1,250.00', '-30'), not a piece of a date, a clock time or an
id ('2024-05-15', '05:40', 'EF101')."""


def stated_numbers(text: str) -> list[float]:
    """Every number written in the text."""
    return [float(m.replace(",", "")) for m in _NUMBER.findall(text) if m.strip(",-")]


def outputs_stated(
    required: list[str], text: str, tolerance: float, max_numbers: int | None = None
) -> float:
    """Share of required outputs found in what the agent told the user."""
    if not required:
        return 1.0
    folded = fold(text)
    targets = [_target_value(want) for want in required]
    numbers = stated_numbers(text) if any(t is not None for t in targets) else []
    if max_numbers is not None:
        extra = {
            n for n in numbers if not any(close(n, t, tolerance) for t in targets if t is not None)
        }
        if len(extra) > max_numbers:
            numbers = []
    found = 0
    for want, target in zip(required, targets, strict=True):
        if target is not None:
            found += any(close(n, target, tolerance) for n in numbers)
        else:
            found += fold(want) in folded
    return found / len(required)


def number_value(text: str) -> float | None:
    """The value of a text that is one number ('1,250', '-30'), else None."""
    text = text.strip()
    if not _NUMBER.fullmatch(text) or not text.strip(",-"):
        return None
    return float(text.replace(",", ""))


@functools.lru_cache(maxsize=4096)
def _target_value(text: str) -> float | None:
    """`number_value` of a task's output or distractor: a task set has few of them, so each is
    parsed once rather than on every score."""
    return number_value(text)


def close(value: float, target: float, tolerance: float) -> bool:
    """Whether two numbers are equal within the relative tolerance."""
    return abs(value - target) <= tolerance * max(1.0, abs(target))


def mentions(folded_text: str, phrase: str) -> bool:
    """Whether `phrase` stands in the (already folded) text as whole words."""
    folded = fold(phrase)
    return bool(folded) and _word_pattern(folded).search(folded_text) is not None


@functools.lru_cache(maxsize=4096)
def _word_pattern(folded: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(folded) + r"(?!\w)")


def fold(text: str) -> str:
    return " ".join(text.casefold().split())
