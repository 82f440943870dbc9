"""The SQLite state engine: isolation, rollback, atomic calls and the change log."""

import sqlite3

import gymnasium as gym
import pytest

from envfactory_gym.actions import format_tool_call
from envfactory_gym.database import (
    Database,
    build_template,
    comparable_diff,
    diff_digest,
    log_json,
)
from tests.conftest import ENV_ID


def play_calls(env, task_id):
    env.reset(options={"task_id": task_id})
    for call in env.unwrapped.task.calls:
        env.step(format_tool_call(call.name, call.arguments))


def test_reset_restores_exact_digest(env):
    env.reset(seed=0)
    pristine = env.unwrapped.state_digest()
    play_calls(env, "airline-cancel_and_add_bag-00")
    assert env.unwrapped.state_digest() != pristine
    env.reset(seed=0)
    assert env.unwrapped.state_digest() == pristine
    assert env.unwrapped.diff() == {}


def test_two_instances_never_share_state():
    first, second = gym.make(ENV_ID), gym.make(ENV_ID)
    second.reset(seed=0)
    before = second.unwrapped.state_digest()
    play_calls(first, "airline-book-00")
    assert first.unwrapped.diff() != {}
    assert second.unwrapped.state_digest() == before and second.unwrapped.diff() == {}


def test_failing_call_changes_nothing(env):
    env.reset(options={"task_id": "airline-book-00"})
    booking = dict(env.unwrapped.task.calls[-1].arguments)
    before = env.unwrapped.state_digest()
    wrong_amount = dict(booking, payment_methods=[dict(booking["payment_methods"][0], amount=1)])
    obs = env.step(format_tool_call("book_reservation", wrong_amount))[0]
    assert "payment does not add up" in obs
    obs = env.step(format_tool_call("cancel_reservation", {"reservation_id": "ZZZZZZ"}))[0]
    assert "not found" in obs
    assert env.unwrapped.state_digest() == before and env.unwrapped.diff() == {}


def test_check_constraint_violation_rolls_back_the_whole_call(env):
    env.reset(options={"task_id": "airline-add_bags-00"})
    task = env.unwrapped.task
    update = dict(task.calls[-1].arguments)
    update["nonfree_baggages"] = update["total_baggages"] + 5  # the fee is charged before the CHECK
    before = env.unwrapped.state_digest()
    obs = env.step(format_tool_call("update_reservation_baggages", update))[0]
    assert "refused by the database" in obs and "CHECK" in obs
    assert env.unwrapped.state_digest() == before


def test_diff_reports_rows_added_changed_removed(env):
    play_calls(env, "airline-book-00")
    diff = env.unwrapped.diff()
    assert len(diff["reservations"]["added"]) == 1
    assert diff["reservations"]["added"][0]["created_at"] == "2024-05-15T15:00:00"
    assert {"seats_" + env.unwrapped.task.calls[-1].arguments["cabin"]} == set(
        diff["flight_dates"]["changed"][0]["fields"]
    )
    assert diff == env.unwrapped.task.expected_diff


def test_change_log_nets_out_reverted_changes():
    template = build_template(
        "CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT NOT NULL)",
        lambda conn: conn.execute("INSERT INTO t VALUES ('k1', 'a')"),
    )
    db = Database(template)
    db.execute("INSERT INTO t VALUES ('k2', 'b')")
    db.execute("DELETE FROM t WHERE id = 'k2'")
    db.execute("UPDATE t SET v = 'z' WHERE id = 'k1'")
    db.execute("UPDATE t SET v = 'a' WHERE id = 'k1'")
    assert db.changes() == []
    db.execute("UPDATE t SET id = 'k5' WHERE id = 'k1'")
    assert db.diff() == {"t": {"added": [{"id": "k5", "v": "a"}],
                               "removed": [{"id": "k1", "v": "a"}], "changed": []}}  # fmt: skip
    db.reset()
    assert db.changes() == [] and db.rows("SELECT * FROM t") == [{"id": "k1", "v": "a"}]


def test_surrogate_keys_do_not_make_the_diff_order_dependent():
    template = build_template("CREATE TABLE log (seq INTEGER PRIMARY KEY, v TEXT)", lambda c: None)
    first, second = Database(template), Database(template)
    for value in ("a", "b"):
        first.execute("INSERT INTO log (v) VALUES (?)", (value,))
    for value in ("b", "a"):
        second.execute("INSERT INTO log (v) VALUES (?)", (value,))
    assert diff_digest(first.diff()) == diff_digest(second.diff())


def test_equivalent_write_orders_score_the_same(env):
    env.reset(options={"task_id": "airline-cancel_and_add_bag-00"})
    task = env.unwrapped.task
    for index in (0, 1, 3, 4, 2):  # add the bags before cancelling the other trip
        call = task.calls[index]
        env.step(format_tool_call(call.name, call.arguments))
    _, reward, _, _, info = env.step("Done: " + ", ".join(task.outputs))
    assert info["reward_breakdown"]["state"] == 1.0 and reward == 1.0


def test_call_savepoint_undoes_writes_on_error():
    template = build_template("CREATE TABLE t (v INTEGER CHECK (v >= 0))", lambda conn: None)
    db = Database(template)
    with pytest.raises(sqlite3.IntegrityError), db.call():
        db.execute("INSERT INTO t VALUES (1)")
        db.execute("INSERT INTO t VALUES (-1)")
    assert db.value("SELECT count(*) FROM t") == 0 and db.changes() == []


def test_change_log_json_is_read_whole():
    assert log_json('{"a":[1,2.5,"x"],"b":null}') == {"a": [1, 2.5, "x"], "b": None}
    with pytest.raises(ValueError, match="trailing text"):
        log_json('{"a":1} {"b":2}')


def test_diff_digest_ignores_order():
    a = {"t": {"added": [{"id": 1}, {"id": 2}], "removed": [], "changed": []}}
    b = {"t": {"added": [{"id": 2}, {"id": 1}], "removed": [], "changed": []}}
    assert diff_digest(a) == diff_digest(b) != diff_digest({})
    assert diff_digest({"t": {"added": [], "removed": [], "changed": []}}) == diff_digest({})


def test_comparable_diffs_are_equal_exactly_when_the_changes_are():
    row_a = {"id": 1, "tags": ["x", "y"]}
    row_b = {"tags": ["x", "y"], "id": 1}  # the same row, its fields in another order
    changed = {"key": ["A1"], "fields": {"status": ["active", "cancelled"]}}

    def diff(added, changed_rows=()):
        return {"t": {"added": list(added), "removed": [], "changed": list(changed_rows)}}

    assert comparable_diff(diff([row_a, {"id": 2}])) == comparable_diff(diff([{"id": 2}, row_b]))
    assert comparable_diff(diff([row_a], [changed])) == comparable_diff(diff([row_b], [changed]))
    assert comparable_diff(diff([])) == comparable_diff({})
    assert comparable_diff(diff([{"id": 1.0}])) == comparable_diff(diff([{"id": 1}]))  # as in SQL
    different = [
        diff([row_a, row_a]),  # a repeated row counts twice
        diff([row_a, row_a, {"id": 2}]),
        diff([row_a, {"id": 2}, {"id": 2}]),
        diff([{"id": 1, "tags": ["y", "x"]}, {"id": 2}]),  # list order is part of a value
        diff([{"id": 1, "tags": ["y", "x"]}]),
        diff([row_a]),
        diff([], [changed]),
        {"u": diff([row_a])["t"]},
        {"t": {"removed": [row_a]}},
    ]
    forms = [comparable_diff(d) for d in [diff([row_a, {"id": 2}]), *different]]
    assert all(forms[i] != forms[j] for i in range(len(forms)) for j in range(i))


def test_foreign_keys_are_enforced(env):
    env.reset(seed=0)
    with pytest.raises(sqlite3.IntegrityError):
        env.unwrapped.db.execute(
            "INSERT INTO payments (reservation_id, payment_id, amount) VALUES ('NOPE', 'x', 1)"
        )
