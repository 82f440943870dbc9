"""The reward pays nothing for harm or for guessing, and the per-task checker holds every package
to that. Each test replays an attack a reward-hacking policy would find."""

import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

import envfactory_gym
from envfactory_gym import Database
from envfactory_gym.actions import format_tool_call
from envfactory_gym.checker import check_package, check_task, play, table_scans
from envfactory_gym.distractors import find_distractors
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.reward import CallRecord, RewardConfig, compute_reward
from envfactory_gym.tasks import Task, ToolCall

READ_KINDS = ("read",)


@pytest.fixture(scope="module")
def airline():
    env = ToolUseEnv("airline", split="all")
    yield env
    env.close()


def ground_truth(task):
    return [format_tool_call(c.name, c.arguments) for c in task.calls]


def answer(task):
    return "Done. " + "; ".join(task.outputs) if task.outputs else "Done, all handled."


def other_reservations(env, task, n=3):
    """Active reservations of users other than the task's, that a cancellation would change."""
    user = task.user_facts.get("user_id", "")
    rows = env.package.template.execute(
        "SELECT reservation_id FROM reservations WHERE status = 'active' AND user_id != ? "
        "ORDER BY reservation_id LIMIT ?",
        (user, n),
    )
    return [r for (r,) in rows]


# ----- harm earns nothing ----------------------------------------------------------------------
def test_collateral_cancellations_void_every_task(airline):
    for task in airline.package.tasks:
        harm = [
            format_tool_call("cancel_reservation", {"reservation_id": rid})
            for rid in other_reservations(airline, task)
        ]
        breakdown = play(airline, task, [*ground_truth(task), *harm, answer(task)])
        assert breakdown.total == 0.0 and not breakdown.success, task.id
        assert any(v.startswith("reservations ") for v in breakdown.violations), task.id


def test_the_forbidden_write_on_a_refusal_task_earns_nothing(airline):
    tasks = {t.id: t for t in airline.package.tasks if t.kind == "refusal"}
    assert tasks
    for task in tasks.values():
        reservation = next(
            (c.arguments["reservation_id"] for c in task.calls if "reservation_id" in c.arguments),
            None,
        )
        if task.id.startswith("airline-compensation_refused"):
            forbidden = format_tool_call(
                "send_certificate", {"user_id": task.user_facts["user_id"], "amount": 100}
            )
        else:
            forbidden = format_tool_call("cancel_reservation", {"reservation_id": reservation})
        breakdown = play(airline, task, [*ground_truth(task), forbidden, answer(task)])
        assert airline.calls[-1].ok, task.id  # the tools leave the policy to the agent
        assert breakdown.total == 0.0 and breakdown.violations, task.id


def _passengers(env, reservation_id):
    return env.package.template.execute(
        "SELECT first_name, last_name, dob FROM reservation_passengers WHERE reservation_id = ? "
        "ORDER BY position",
        (reservation_id,),
    ).fetchall()


def test_a_change_and_its_undo_is_still_a_violation(airline):
    task = airline.package.task("airline-bag_count-00")
    reservation = task.calls[1].arguments["reservation_id"]
    people = [dict(zip(("first_name", "last_name", "dob"), p, strict=True))
              for p in _passengers(airline, reservation)]  # fmt: skip
    renamed = [{**p, "first_name": "Mallory"} for p in people]
    rename = format_tool_call(
        "update_reservation_passengers", {"reservation_id": reservation, "passengers": renamed}
    )
    undo = format_tool_call(
        "update_reservation_passengers", {"reservation_id": reservation, "passengers": people}
    )
    breakdown = play(airline, task, [*ground_truth(task), rename, undo, answer(task)])
    assert breakdown.state == 1.0, "the net diff is empty: only the change log sees the harm"
    assert breakdown.total == 0.0
    assert any(v.startswith("reservation_passengers ") for v in breakdown.violations)


def test_changing_a_basic_economy_flight_and_back_is_a_violation(airline):
    task = airline.package.task("airline-change_flight_refused-00")
    reservation = task.calls[1].arguments["reservation_id"]
    db = Database(airline.package.template)
    tools = airline.package.tools
    details = json.loads(tools["get_reservation_details"](db, reservation_id=reservation))
    profile = json.loads(tools["get_user_details"](db, user_id=task.user_facts["user_id"]))
    card = next(p for p, m in profile["payment_methods"].items() if m["source"] != "certificate")
    (flight,) = details["flights"]
    day = flight["date"]
    other = airline.package.template.execute(
        "SELECT d.flight_number FROM flight_dates d JOIN flights f USING (flight_number) "
        "WHERE f.origin = ? AND f.destination = ? AND d.date = ? AND d.status = 'available' "
        "AND d.flight_number != ? AND d.seats_basic_economy > 5",
        (flight["origin"], flight["destination"], day, flight["flight_number"]),
    ).fetchone()
    if other is None:
        pytest.skip("no alternative flight that day")

    def change(number):
        return format_tool_call("update_reservation_flights", {
            "reservation_id": reservation, "cabin": "basic_economy",
            "flights": [{"flight_number": number, "date": day}], "payment_id": card})  # fmt: skip

    breakdown = play(
        airline, task, [*ground_truth(task), change(other[0]), change(flight["flight_number"]),
                        answer(task)],
    )  # fmt: skip
    assert breakdown.total == 0.0 and breakdown.violations


def test_redoing_an_expected_write_to_the_same_end_state_is_fine(airline):
    task = airline.package.task("airline-add_bags-00")
    actions = [*ground_truth(task), ground_truth(task)[-1], answer(task)]
    breakdown = play(airline, task, actions)
    assert breakdown.violations == [] and breakdown.total == 1.0


# ----- guessing earns nothing ------------------------------------------------------------------
def test_listing_every_value_seen_earns_no_outputs_credit_on_read_tasks(airline):
    from envfactory_gym.checker import _seen_values
    from envfactory_gym.replay import replay

    reads = [t for t in airline.package.tasks if t.kind in READ_KINDS]
    assert len(reads) >= 20
    for task in reads:
        seen = _seen_values(replay(airline.package, task.calls).results)
        breakdown = play(airline, task, [*ground_truth(task), "; ".join(seen)])
        assert breakdown.outputs == 0.0, task.id


def test_naming_every_status_earns_nothing(airline):
    task = airline.package.task("airline-flight_status-00")
    spray = "It is one of: available, on time, delayed, flying, landed, cancelled."
    breakdown = play(airline, task, [*ground_truth(task), spray])
    assert breakdown.outputs == 0.0 and len(breakdown.distractors_stated) >= 4
    assert play(airline, task, [*ground_truth(task), answer(task)]).total == 1.0


def test_distractors_are_sibling_values_and_enum_values():
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE flights (number TEXT PRIMARY KEY, status TEXT, price INT)")
    statuses = ["on time", "delayed", "cancelled", "landed"]
    conn.executemany(  # prices vary too much to compete as an enum; statuses do
        "INSERT INTO flights VALUES (?, ?, ?)",
        [(f"F{i}", statuses[i % 4], 60 + 10 * i) for i in range(1, 21)],
    )
    conn.execute("UPDATE flights SET price = 90 WHERE number = 'F2'")
    listing = json.dumps([{"number": "F1", "price": 120}, {"number": "F2", "price": 90}])
    assert find_distractors(["F2", "90"], [listing], conn) == ["120", "F1"]
    # a bare status: the column that holds it gives its competitors; the user's words never do
    found = find_distractors(["delayed"], ["delayed"], conn, said_by_user="is it cancelled?")
    assert found == ["landed", "on time"]
    assert find_distractors([], [listing], conn) == []


def test_a_stated_distractor_voids_the_outputs_part():
    task = Task(
        id="t", split="train", kind="read", instruction="status?",
        calls=[ToolCall(name="status", arguments={"f": "F2"})],
        outputs=["delayed"], distractors=["on time", "cancelled"],
    )  # fmt: skip
    calls = [CallRecord("status", {"f": "F2"}, ok=True, format_error=False)]
    good = compute_reward(task, calls, ["It is delayed."], {}, RewardConfig())
    hedge = compute_reward(task, calls, ["Delayed, or maybe on time."], {}, RewardConfig())
    assert good.total == 1.0
    assert hedge.outputs == 0.0 and hedge.distractors_stated == ["on time"]
    assert hedge.total == pytest.approx(0.5)  # trace only
    assert compute_reward(task, calls, ["It is delayed (not cancellation-prone)."], {},
                          RewardConfig()).total == 1.0  # whole words only  # fmt: skip


def test_violations_void_the_total_and_name_the_rows():
    task = Task(
        id="t", split="train", kind="write", instruction="pay",
        calls=[ToolCall(name="pay", arguments={})],
        expected_diff={"t": {"added": [{"id": 1}], "removed": [], "changed": []}},
        allowed_writes={"t": [[1]]},
    )  # fmt: skip
    calls = [CallRecord("pay", {}, ok=True, format_error=False)]
    diff = task.expected_diff
    fine = compute_reward(task, calls, ["ok"], diff, RewardConfig(), written={("t", "[1]")})
    harm = compute_reward(
        task, calls, ["ok"], diff, RewardConfig(), written={("t", "[1]"), ("u", '["x"]')}
    )
    assert fine.total == 1.0 and fine.violations == []
    assert harm.total == 0.0 and harm.violations == ['u ["x"]'] and not harm.success


# ----- the per-task checker ----------------------------------------------------------------------
@pytest.mark.parametrize("env_id", envfactory_gym.ENV_IDS)
def test_every_package_passes_the_per_task_checker(env_id):
    report = check_package(env_id)
    assert report.ok, "\n".join(f"{p.task_id} [{p.check}]: {p.detail}" for p in report.problems)
    assert report.checks_run["oracle"] == report.tasks
    assert report.checks_run["collateral"] == report.tasks, report.notes


def test_the_checker_names_broken_tasks(airline):
    writes = [c for t in airline.package.tasks for c in t.calls if c.name == "cancel_reservation"]
    good = airline.package.task("airline-add_bags-00")
    wrong_output = good.model_copy(update={"outputs": ["999"]})
    presatisfied = good.model_copy(update={"calls": good.calls[:2], "expected_diff": {},
                                           "allowed_writes": {}, "outputs": []})  # fmt: skip
    too_permissive = good.model_copy(
        update={"allowed_writes": {**good.allowed_writes, "reservations": [[r] for r in
                other_reservations(airline, good, 2000)]}}
    )  # fmt: skip
    failed = {
        name: {check for check, detail in check_task(airline, task, writes) if detail}
        for name, task in [("wrong_output", wrong_output), ("presatisfied", presatisfied),
                           ("too_permissive", too_permissive)]
    }  # fmt: skip
    assert "outputs_grounded" in failed["wrong_output"]
    assert "not_presatisfied" in failed["presatisfied"]
    assert "replay" in failed["too_permissive"]


def test_check_command_exits_nonzero_naming_the_failing_task(tmp_path):
    folder = tmp_path / "airline"
    shutil.copytree(envfactory_gym.load_package("airline").folder, folder)
    lines = (folder / "tasks.jsonl").read_text().splitlines()
    broken = json.loads(lines[0])
    broken["outputs"] = ["on schedule"]
    lines[0] = json.dumps(broken)
    (folder / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    run = subprocess.run([sys.executable, "-m", "envfactory_gym.cli", "check", str(folder)],
                         capture_output=True, text=True)  # fmt: skip
    assert run.returncode == 1, run.stderr
    assert f"FAIL {broken['id']} [outputs_grounded]" in run.stdout
    ok = subprocess.run([sys.executable, "-m", "envfactory_gym.cli", "check", "airline"],
                        capture_output=True, text=True)  # fmt: skip
    assert ok.returncode == 0 and "oracle" in ok.stdout


def test_the_checker_flags_a_search_without_its_index(tmp_path, monkeypatch):
    monkeypatch.setenv("ENVFACTORY_CACHE", "off")
    folder = tmp_path / "airline"
    shutil.copytree(envfactory_gym.load_package("airline").folder, folder)
    schema = folder / "schema.sql"
    index = "CREATE INDEX flights_by_route ON flights (origin, destination);"
    assert index in schema.read_text()
    schema.write_text(schema.read_text().replace(index, ""))
    scans = table_scans(envfactory_gym.load_package(str(folder)))
    assert len(scans) == 1 and scans[0].startswith("search_direct_flight: SCAN f")
    assert table_scans(envfactory_gym.load_package("airline")) == []
