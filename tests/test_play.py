"""`envfactory play` and `envfactory tasks`: a person at the terminal, and the task list."""

from __future__ import annotations

import io
import json

import pytest

from envfactory_gym.actions import format_tool_call
from envfactory_gym.agents import OracleAgent
from envfactory_gym.cli import main
from envfactory_gym.package import load_package
from envfactory_gym.play import PlayError, parse_line, play_as_agent, play_as_user

TOOLS = {"get_user_details", "list_all_airports"}


def test_a_typed_line_becomes_a_call_or_a_message() -> None:
    call = format_tool_call("get_user_details", {"user_id": "mia_1"})
    assert parse_line('get_user_details(user_id="mia_1")', TOOLS) == call
    assert parse_line('{"name": "get_user_details", "arguments": {"user_id": "mia_1"}}', TOOLS) == (
        call
    )
    assert parse_line("Sure (right away), done.", TOOLS) == "Sure (right away), done."
    with pytest.raises(PlayError, match="no tool 'get_usr'"):
        parse_line("get_usr(user_id='x')", TOOLS)
    with pytest.raises(PlayError, match="literals"):
        parse_line("get_user_details(user_id=some_name)", TOOLS)


def test_a_person_playing_the_ground_truth_scores_one() -> None:
    task = load_package("airline").task("airline-cancel-00")
    lines = [f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})"
             for c in task.calls]  # fmt: skip
    answer = f"Cancelled; {', '.join(task.outputs)} is refunded."
    typed = io.StringIO("\n".join(["/tools", "oops(", *lines, answer]) + "\n")
    shown = io.StringIO()
    assert play_as_agent("envfactory/Airline-v0", task.id, typed, shown) == 1.0
    assert "cancel_reservation(reservation_id: string)" in shown.getvalue()
    assert "reward 1.000" in shown.getvalue()


def test_a_person_playing_the_user_answers_the_agent() -> None:
    typed = io.StringIO("\n")  # the person ends the conversation when the agent reports back
    shown = io.StringIO()
    reward = play_as_user("envfactory/Airline-v0", OracleAgent(), "airline-cancel-00", typed, shown)
    assert reward == 1.0 and "agent calls a tool" in shown.getvalue()


def test_tasks_lists_ids_kinds_and_splits(capsys: pytest.CaptureFixture) -> None:
    assert main(["tasks", "envfactory/Retail-v0", "--kind", "refusal", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    expected = [t.id for t in load_package("retail").tasks if t.kind == "refusal"]
    assert [r["id"] for r in rows] == expected and {r["kind"] for r in rows} == {"refusal"}
