"""Episode reward: `max(0, tau * trace + (1 - tau) * outcome - penalties)`, from the database.

- trace: the share of ground-truth calls the agent made (masked arguments ignored, numbers
  compared with a tolerance), each agent call matching at most one ground-truth call;
- outcome: the expected final state reached (the episode's whole diff equals the expected diff,
  so a forbidden write fails it and doing nothing fails a task that needs a write) times the share
  of required outputs stated to the user; for a refusal (no write, no output) it is also scaled
  by trace, so doing nothing is not rewarded as a correct refusal;
- penalties: malformed calls (bad JSON, unknown tool, invalid arguments) and calls beyond the
  ground truth plus a free allowance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from envfactory_gym.database import Diff, diff_digest
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
        12, ge=0, description="Numeric outputs do not count if the agent stated more distinct "
        "numbers than this (plus two per required output): listing candidates is not an answer."
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


@dataclass(frozen=True)
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
    total: float
    success: bool


def compute_reward(
    task: Task,
    calls: list[CallRecord],
    said_to_user: list[str],
    diff: Diff,
    config: RewardConfig,
    tau: float | None = None,
) -> RewardBreakdown:
    """Score one finished episode."""
    tau = config.tau if tau is None else tau
    matched = match_calls(task.calls, calls, config.number_tolerance)
    trace = matched / len(task.calls) if task.calls else 1.0
    state = 1.0 if diff_digest(diff) == diff_digest(task.expected_diff) else 0.0
    outputs = outputs_stated(
        task.outputs, "\n".join(said_to_user), config.number_tolerance, config.max_stated_numbers
    )
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
    total = max(0.0, tau * trace + (1.0 - tau) * outcome - penalty)
    return RewardBreakdown(
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
        total=total,
        success=trace == 1.0 and outcome == 1.0,
    )


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
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return abs(expected - actual) <= tolerance * max(1.0, abs(expected))
    if isinstance(expected, str) and isinstance(actual, str):
        return _fold(expected) == _fold(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            values_match(e, a, tolerance) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            values_match(v, actual[k], tolerance) for k, v in expected.items()
        )
    return expected == actual


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def outputs_stated(
    required: list[str], text: str, tolerance: float, max_numbers: int | None = None
) -> float:
    """Share of required outputs found in what the agent told the user."""
    if not required:
        return 1.0
    folded = _fold(text)
    numbers = [_to_number(m) for m in _NUMBER.findall(text)]
    if max_numbers is not None and len(set(numbers)) > max_numbers + 2 * len(required):
        numbers = []
    found = 0
    for want in required:
        target = _to_number(want) if _NUMBER.fullmatch(want.strip()) else None
        if target is not None:
            found += any(
                n is not None and abs(n - target) <= tolerance * max(1.0, abs(target))
                for n in numbers
            )
        else:
            found += _fold(want) in folded
    return found / len(required)


def _to_number(text: str) -> float | None:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())
