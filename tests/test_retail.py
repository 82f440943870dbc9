"""Retail-v0: tau2-bench-compatible tools whose rules hold in the database, and a task set that
replays, passes the per-task checker and separates the oracle from agents that do nothing."""

import json
import re
from pathlib import Path

import gymnasium as gym
import pytest

import envfactory_gym
from envfactory_gym import Database, ToolError
from envfactory_gym.actions import format_tool_call
from envfactory_gym.agents import OracleAgent, RandomAgent
from envfactory_gym.checker import check_package
from envfactory_gym.evaluation import evaluate, run_episode
from envfactory_gym.replay import replay
from envfactory_gym.tools import ArgumentError

ENV_ID = "envfactory/Retail-v0"
PACKAGE = envfactory_gym.load_package("retail")
TAU2_TOOLS = {
    "find_user_id_by_email", "find_user_id_by_name_zip", "get_user_details", "get_order_details",
    "get_product_details", "get_item_details", "list_all_product_types", "cancel_pending_order",
    "modify_pending_order_address", "modify_pending_order_items", "modify_pending_order_payment",
    "modify_user_address", "return_delivered_order_items", "exchange_delivered_order_items",
    "calculate", "transfer_to_human_agents",
}  # fmt: skip


@pytest.fixture
def db():
    handle = Database(PACKAGE.template)
    yield handle
    handle.close()


def call(db, name, **arguments):
    """Run a tool as the env does: validated arguments, one savepoint per call."""
    tool = PACKAGE.tools[name]
    with db.call():
        return tool(db, **tool.validate(arguments))


def order_where(db, sql, params=()):
    """The first order (by id) that the condition on `o` (orders) and `u` (its user) picks."""
    found = db.value(
        f"SELECT o.order_id FROM orders o JOIN users u USING (user_id) WHERE {sql} "
        "ORDER BY o.order_id LIMIT 1",
        params,
    )
    assert found is not None, sql
    return found


def balance(db, payment_method_id):
    return db.value(
        "SELECT balance FROM payment_methods WHERE payment_method_id = ?", (payment_method_id,)
    )


def other_variant(db, item_id, available=1):
    """Another variant of the item's product (available or not), as (item_id, price in cents)."""
    row = db.row(
        "SELECT o.item_id, o.price FROM items i JOIN items o ON o.product_id = i.product_id "
        "WHERE i.item_id = ? AND o.item_id != i.item_id AND o.available = ? "
        "ORDER BY o.item_id LIMIT 1",
        (item_id, available),
    )
    return row


def first_line(db, order_id):
    return db.row(
        "SELECT * FROM order_items WHERE order_id = ? ORDER BY position LIMIT 1", (order_id,)
    )


SINGLE_PAYMENT = "(SELECT count(*) FROM payments p WHERE p.order_id = o.order_id) = 1"


# ----- the API -----------------------------------------------------------------------------------
def test_tool_names_and_arguments_follow_tau2_retail():
    assert set(PACKAGE.tools) == TAU2_TOOLS
    params = {name: set(t.parameters["properties"]) for name, t in PACKAGE.tools.items()}
    assert params["modify_pending_order_items"] == {
        "order_id", "item_ids", "new_item_ids", "payment_method_id"}  # fmt: skip
    assert params["modify_pending_order_address"] == {
        "order_id", "address1", "address2", "city", "state", "country", "zip"}  # fmt: skip
    assert params["return_delivered_order_items"] == {"order_id", "item_ids", "payment_method_id"}
    reason = PACKAGE.tools["cancel_pending_order"].parameters["properties"]["reason"]
    assert set(reason["enum"]) == {"no longer needed", "ordered by mistake"}
    assert {n for n, t in PACKAGE.tools.items() if t.kind == "write"} == {
        n for n in TAU2_TOOLS if n.split("_")[0] in ("cancel", "modify", "return", "exchange")
    }


def test_seed_has_every_status_and_consistent_money(db):
    counts = {
        row["status"]: row["n"]
        for row in db.rows("SELECT status, count(*) AS n FROM orders GROUP BY status")
    }
    assert set(counts) == {"pending", "pending (item modified)", "processed", "delivered",
                           "cancelled", "return requested", "exchange requested"}  # fmt: skip
    assert sum(counts.values()) == 1000
    assert db.value("SELECT count(*) FROM users") == 500
    assert db.value("SELECT count(*) FROM products") == 50
    # what an open order netted equals its items' prices; a cancelled one netted nothing
    nets = db.rows(
        "SELECT o.order_id, o.status, (SELECT sum(price) FROM order_items i "
        "WHERE i.order_id = o.order_id) AS items, (SELECT sum(CASE transaction_type "
        "WHEN 'payment' THEN amount ELSE -amount END) FROM payments p "
        "WHERE p.order_id = o.order_id) AS net FROM orders o"
    )
    for row in nets:
        assert row["net"] == (0 if row["status"] == "cancelled" else row["items"]), row
    # everything shipped has a tracking number; nothing pending or cancelled does
    shipped = db.value(
        "SELECT count(*) FROM order_items i JOIN orders o USING (order_id) WHERE "
        "(o.status IN ('processed', 'delivered', 'return requested', 'exchange requested')) "
        "!= (i.tracking_id IS NOT NULL)"
    )
    assert shipped == 0


def test_find_user_by_email_or_name_and_zip(db):
    user = db.row("SELECT * FROM users ORDER BY user_id LIMIT 1")
    assert call(db, "find_user_id_by_email", email=user["email"].upper()) == user["user_id"]
    found = call(db, "find_user_id_by_name_zip", first_name=user["first_name"].lower(),
                 last_name=user["last_name"], zip=user["zip"])  # fmt: skip
    assert found == user["user_id"]
    with pytest.raises(ToolError, match="no customer"):
        call(db, "find_user_id_by_name_zip", first_name=user["first_name"],
             last_name=user["last_name"], zip="00000")  # fmt: skip
    with pytest.raises(ToolError, match="starts with '#'|start with '#'"):
        call(db, "get_order_details", order_id="R1234567")


def test_product_details_list_variants_with_options(db):
    catalog = call(db, "list_all_product_types")
    assert list(catalog) == sorted(catalog) and len(catalog) == 50
    product = call(db, "get_product_details", product_id=catalog["Hiking Boots"])
    variant = next(iter(product["variants"].values()))
    assert set(variant["options"]) == {"size", "material", "waterproof"}
    item = call(db, "get_item_details", item_id=variant["item_id"])
    assert item["product_id"] == product["product_id"] and item["price"] == variant["price"]
    with pytest.raises(ToolError, match="not an item id|not found"):
        call(db, "get_product_details", product_id=variant["item_id"])


# ----- cancelling --------------------------------------------------------------------------------
def test_cancel_refunds_a_gift_card_at_once(db):
    order_id = order_where(
        db, f"o.status = 'pending' AND {SINGLE_PAYMENT} AND EXISTS (SELECT 1 FROM payments p "
        "JOIN payment_methods m USING (payment_method_id) WHERE p.order_id = o.order_id "
        "AND m.source = 'gift_card')",
    )  # fmt: skip
    paid = db.row("SELECT * FROM payments WHERE order_id = ?", (order_id,))
    before = balance(db, paid["payment_method_id"])
    order = call(db, "cancel_pending_order", order_id=order_id, reason="ordered by mistake")
    assert order["status"] == "cancelled" and order["cancel_reason"] == "ordered by mistake"
    assert order["payment_history"][-1]["transaction_type"] == "refund"
    assert balance(db, paid["payment_method_id"]) == before + paid["amount"]
    with pytest.raises(ToolError, match="only a 'pending' order"):
        call(db, "cancel_pending_order", order_id=order_id, reason="ordered by mistake")


def test_cancel_needs_a_pending_order_and_a_listed_reason(db):
    shipped = order_where(db, "o.status = 'processed'")
    with pytest.raises(ToolError, match="'processed'"):
        call(db, "cancel_pending_order", order_id=shipped, reason="no longer needed")
    pending = order_where(db, "o.status = 'pending'")
    with pytest.raises(ArgumentError):
        call(db, "cancel_pending_order", order_id=pending, reason="found it cheaper")
    assert db.diff() == {}


# ----- modifying a pending order -----------------------------------------------------------------
def test_items_can_be_modified_once_and_the_difference_is_charged(db):
    order_id = order_where(db, f"o.status = 'pending' AND {SINGLE_PAYMENT}")
    line = first_line(db, order_id)
    new = other_variant(db, line["item_id"])
    card = db.value(
        "SELECT payment_method_id FROM payment_methods m JOIN orders o USING (user_id) "
        "WHERE o.order_id = ? AND m.source != 'gift_card' LIMIT 1",
        (order_id,),
    )
    order = call(db, "modify_pending_order_items", order_id=order_id, item_ids=[line["item_id"]],
                 new_item_ids=[new["item_id"]], payment_method_id=card)  # fmt: skip
    difference = new["price"] - line["price"]
    assert order["status"] == "pending (item modified)"
    assert order["items"][0]["item_id"] == new["item_id"]
    last = order["payment_history"][-1]
    assert last["transaction_type"] == ("payment" if difference > 0 else "refund")
    assert round(last["amount"] * 100) == abs(difference)
    again = other_variant(db, new["item_id"])
    with pytest.raises(ToolError, match="already modified once"):
        call(db, "modify_pending_order_items", order_id=order_id, item_ids=[new["item_id"]],
             new_item_ids=[again["item_id"]], payment_method_id=card)  # fmt: skip
    with pytest.raises(ToolError, match="only a 'pending' order can be cancelled"):
        call(db, "cancel_pending_order", order_id=order_id, reason="no longer needed")
    moved = call(db, "modify_pending_order_address", order_id=order_id, address1="1 Elm Street",
                 address2="", city="Boise", state="ID", country="USA", zip="83702")  # fmt: skip
    assert moved["address"]["city"] == "Boise"


def test_a_gift_card_must_cover_the_difference(db):
    """A gift card pays a price rise only up to its balance; a refund raises its balance."""
    rows = db.rows(
        "SELECT o.order_id, i.item_id, i.price, v.item_id AS new_id, v.price AS new_price, "
        "m.payment_method_id, m.balance FROM orders o JOIN order_items i USING (order_id) "
        "JOIN items a ON a.item_id = i.item_id JOIN items v ON v.product_id = a.product_id "
        "AND v.item_id != a.item_id AND v.available = 1 JOIN payment_methods m "
        "ON m.user_id = o.user_id AND m.source = 'gift_card' WHERE o.status = 'pending' "
        "ORDER BY o.order_id, i.position, v.item_id"
    )
    short = next(r for r in rows if r["new_price"] - r["price"] > r["balance"])
    with pytest.raises(ToolError, match="not enough"):
        call(db, "modify_pending_order_items", order_id=short["order_id"],
             item_ids=[short["item_id"]], new_item_ids=[short["new_id"]],
             payment_method_id=short["payment_method_id"])  # fmt: skip
    assert db.diff() == {}  # the failed call left no trace
    cheaper = next(r for r in rows if r["new_price"] < r["price"])
    call(db, "modify_pending_order_items", order_id=cheaper["order_id"],
         item_ids=[cheaper["item_id"]], new_item_ids=[cheaper["new_id"]],
         payment_method_id=cheaper["payment_method_id"])  # fmt: skip
    refund = cheaper["price"] - cheaper["new_price"]
    assert balance(db, cheaper["payment_method_id"]) == cheaper["balance"] + refund


def test_items_only_become_available_variants_of_the_same_product(db):
    order_id = order_where(db, "o.status = 'pending'")
    line = first_line(db, order_id)
    card = db.value(
        "SELECT payment_method_id FROM payments WHERE order_id = ? LIMIT 1", (order_id,)
    )
    other_product = db.value(
        "SELECT o.item_id FROM items i JOIN items o ON o.product_id != i.product_id "
        "WHERE i.item_id = ? LIMIT 1",
        (line["item_id"],),
    )
    with pytest.raises(ToolError, match="same product"):
        call(db, "modify_pending_order_items", order_id=order_id, item_ids=[line["item_id"]],
             new_item_ids=[other_product], payment_method_id=card)  # fmt: skip
    unavailable = db.row(
        "SELECT o.item_id, i.order_id, i.item_id AS old FROM order_items i "
        "JOIN orders r USING (order_id) JOIN items a ON a.item_id = i.item_id "
        "JOIN items o ON o.product_id = a.product_id AND o.available = 0 "
        "WHERE r.status = 'pending' ORDER BY 2, 1 LIMIT 1"
    )
    payer = db.value(
        "SELECT payment_method_id FROM payments WHERE order_id = ? LIMIT 1",
        (unavailable["order_id"],),
    )
    with pytest.raises(ToolError, match="not available"):
        call(db, "modify_pending_order_items", order_id=unavailable["order_id"],
             item_ids=[unavailable["old"]], new_item_ids=[unavailable["item_id"]],
             payment_method_id=payer)  # fmt: skip
    with pytest.raises(ToolError, match="is not in the order"):
        call(db, "modify_pending_order_items", order_id=order_id, item_ids=["0000000000"],
             new_item_ids=[line["item_id"]], payment_method_id=card)  # fmt: skip


def test_payment_change_moves_the_money_once(db):
    order_id = order_where(
        db, f"o.status = 'pending' AND {SINGLE_PAYMENT} AND EXISTS (SELECT 1 FROM "
        "payment_methods m WHERE m.user_id = o.user_id AND m.source = 'gift_card' AND "
        "m.balance >= (SELECT amount FROM payments p WHERE p.order_id = o.order_id) AND "
        "m.payment_method_id NOT IN (SELECT payment_method_id FROM payments p "
        "WHERE p.order_id = o.order_id))",
    )  # fmt: skip
    old = db.row("SELECT * FROM payments WHERE order_id = ?", (order_id,))
    gift = db.row(
        "SELECT m.* FROM payment_methods m JOIN orders o USING (user_id) WHERE o.order_id = ? "
        "AND m.source = 'gift_card' AND m.balance >= ? ORDER BY 1 LIMIT 1",
        (order_id, old["amount"]),
    )
    order = call(db, "modify_pending_order_payment", order_id=order_id,
                 payment_method_id=gift["payment_method_id"])  # fmt: skip
    assert [p["transaction_type"] for p in order["payment_history"]] == [
        "payment", "payment", "refund"]  # fmt: skip
    assert balance(db, gift["payment_method_id"]) == gift["balance"] - old["amount"]
    with pytest.raises(ToolError, match="single payment"):
        call(db, "modify_pending_order_payment", order_id=order_id,
             payment_method_id=old["payment_method_id"])  # fmt: skip
    # cancelling now refunds what the order netted: the gift card, not the first method again
    cancelled = call(db, "cancel_pending_order", order_id=order_id, reason="no longer needed")
    refunds = cancelled["payment_history"][3:]
    assert refunds == [{"transaction_type": "refund", "amount": order["payment_history"][0][
        "amount"], "payment_method_id": gift["payment_method_id"]}]  # fmt: skip
    assert balance(db, gift["payment_method_id"]) == gift["balance"]


# ----- delivered orders --------------------------------------------------------------------------
def test_return_refunds_the_price_paid_to_the_original_method_or_a_gift_card(db):
    order_id = order_where(
        db, "o.status = 'delivered' AND (SELECT count(*) FROM order_items i "
        "WHERE i.order_id = o.order_id) >= 2 AND EXISTS (SELECT 1 FROM payment_methods m "
        "WHERE m.user_id = o.user_id AND m.payment_method_id NOT IN (SELECT payment_method_id "
        "FROM payments p WHERE p.order_id = o.order_id) AND m.source != 'gift_card')",
    )  # fmt: skip
    lines = db.rows("SELECT * FROM order_items WHERE order_id = ? ORDER BY position", (order_id,))
    original = db.value("SELECT payment_method_id FROM payments WHERE order_id = ?", (order_id,))
    stranger = db.value(
        "SELECT m.payment_method_id FROM payment_methods m JOIN orders o USING (user_id) "
        "WHERE o.order_id = ? AND m.payment_method_id != ? AND m.source != 'gift_card'",
        (order_id, original),
    )
    items = [line["item_id"] for line in lines[:2]]
    with pytest.raises(ToolError, match="original payment method"):
        call(db, "return_delivered_order_items", order_id=order_id, item_ids=items,
             payment_method_id=stranger)  # fmt: skip
    order = call(db, "return_delivered_order_items", order_id=order_id, item_ids=items,
                 payment_method_id=original)  # fmt: skip
    assert order["status"] == "return requested"
    assert order["return_items"] == items
    assert round(order["return_refund_amount"] * 100) == sum(line["price"] for line in lines[:2])
    with pytest.raises(ToolError, match="only a 'delivered' order"):
        call(db, "exchange_delivered_order_items", order_id=order_id, item_ids=items[:1],
             new_item_ids=[other_variant(db, items[0])["item_id"]],
             payment_method_id=original)  # fmt: skip


def test_an_item_ordered_twice_can_be_returned_twice_not_three_times(db):
    row = db.row(
        "SELECT i.order_id, i.item_id FROM order_items i JOIN orders o USING (order_id) "
        "WHERE o.status = 'delivered' GROUP BY i.order_id, i.item_id HAVING count(*) = 2 "
        "ORDER BY 1 LIMIT 1"
    )
    method = db.value("SELECT payment_method_id FROM payments WHERE order_id = ?",
                      (row["order_id"],))  # fmt: skip
    with pytest.raises(ToolError, match="only 2 time"):
        call(db, "return_delivered_order_items", order_id=row["order_id"],
             item_ids=[row["item_id"]] * 3, payment_method_id=method)  # fmt: skip
    order = call(db, "return_delivered_order_items", order_id=row["order_id"],
                 item_ids=[row["item_id"]] * 2, payment_method_id=method)  # fmt: skip
    assert order["return_items"] == [row["item_id"]] * 2


def test_exchange_records_the_difference_and_checks_the_gift_card(db):
    rows = db.rows(
        "SELECT o.order_id, i.item_id, i.price, v.item_id AS new_id, v.price AS new_price, "
        "m.payment_method_id, m.balance FROM orders o JOIN order_items i USING (order_id) "
        "JOIN items a ON a.item_id = i.item_id JOIN items v ON v.product_id = a.product_id "
        "AND v.item_id != a.item_id AND v.available = 1 JOIN payment_methods m "
        "ON m.user_id = o.user_id AND m.source = 'gift_card' WHERE o.status = 'delivered' "
        "ORDER BY o.order_id, i.position, v.item_id"
    )
    short = next(r for r in rows if r["new_price"] - r["price"] > r["balance"])
    with pytest.raises(ToolError, match="not enough"):
        call(db, "exchange_delivered_order_items", order_id=short["order_id"],
             item_ids=[short["item_id"]], new_item_ids=[short["new_id"]],
             payment_method_id=short["payment_method_id"])  # fmt: skip
    fine = next(r for r in rows if 0 < r["new_price"] - r["price"] <= r["balance"])
    order = call(db, "exchange_delivered_order_items", order_id=fine["order_id"],
                 item_ids=[fine["item_id"]], new_item_ids=[fine["new_id"]],
                 payment_method_id=fine["payment_method_id"])  # fmt: skip
    assert order["status"] == "exchange requested"
    assert order["exchange_new_items"] == [fine["new_id"]]
    assert round(order["exchange_price_difference"] * 100) == fine["new_price"] - fine["price"]
    with pytest.raises(ToolError, match="only a 'delivered' order"):
        call(db, "return_delivered_order_items", order_id=fine["order_id"],
             item_ids=[fine["item_id"]], payment_method_id=fine["payment_method_id"])  # fmt: skip


def test_nothing_is_returned_before_it_arrives(db):
    order_id = order_where(db, "o.status = 'processed'")
    line = first_line(db, order_id)
    method = db.value("SELECT payment_method_id FROM payments WHERE order_id = ?", (order_id,))
    with pytest.raises(ToolError, match="'processed'"):
        call(db, "return_delivered_order_items", order_id=order_id, item_ids=[line["item_id"]],
             payment_method_id=method)  # fmt: skip


def test_user_address_change_leaves_orders_alone(db):
    user = db.row("SELECT * FROM users ORDER BY user_id LIMIT 1")
    view = call(db, "modify_user_address", user_id=user["user_id"], address1="9 Quarry Road",
                address2="Apt 2", city="Omaha", state="NE", country="USA", zip="68102")  # fmt: skip
    assert view["address"]["zip"] == "68102"
    assert set(db.diff()) == {"users"}
    assert call(db, "find_user_id_by_name_zip", first_name=user["first_name"],
                last_name=user["last_name"], zip="68102") == user["user_id"]  # fmt: skip


def test_a_failed_call_in_an_episode_changes_nothing():
    env = gym.make(ENV_ID)
    env.reset(options={"task_id": "retail-modify_again-00"})
    task = env.unwrapped.task
    order = replay(PACKAGE, task.calls).results[-1]
    item = order["items"][0]
    new = other_variant(env.unwrapped.db, item["item_id"])
    obs, *_ = env.step(format_tool_call("modify_pending_order_items", {
        "order_id": order["order_id"], "item_ids": [item["item_id"]],
        "new_item_ids": [new["item_id"]],
        "payment_method_id": order["payment_history"][0]["payment_method_id"]}))  # fmt: skip
    assert "already modified once" in obs
    assert env.unwrapped.db.diff() == {}
    env.close()


# ----- the task set ------------------------------------------------------------------------------
TASK_IDS = [task.id for task in PACKAGE.tasks]


def test_task_set_covers_the_required_mix():
    kinds = {task.kind for task in PACKAGE.tasks}
    assert len(PACKAGE.tasks) >= 80
    assert kinds == {"read", "write", "multi_write", "refusal", "handoff"}
    assert {task.split for task in PACKAGE.tasks} == {"train", "test"}
    written = {c.name for t in PACKAGE.tasks for c in t.calls if PACKAGE.tools[c.name].kind
               == "write"}  # fmt: skip
    assert written == {n for n, t in PACKAGE.tools.items() if t.kind == "write"}


def test_every_task_passes_the_per_task_checker():
    report = check_package(ENV_ID)
    assert report.ok, "\n".join(f"{p.task_id} [{p.check}]: {p.detail}" for p in report.problems)
    assert report.checks_run["oracle"] == report.tasks == len(PACKAGE.tasks)
    assert report.checks_run["collateral"] == report.tasks, report.notes


class SilentAgent:
    """Answers without calling a tool: says it took care of everything."""

    def reset(self, task):
        pass

    def act(self, messages, tools):
        return "Done! Your request has been handled. Have a nice day."


def test_oracle_scores_one_and_doing_nothing_scores_zero():
    oracle = evaluate(ENV_ID, OracleAgent(), "oracle", progress=False)
    assert oracle["success_rate"] == 1.0 and oracle["mean_reward"] == 1.0
    silent = evaluate(ENV_ID, SilentAgent(), "silent", progress=False)
    assert silent["mean_reward"] == 0.0 and silent["success_rate"] == 0.0
    random_agent = evaluate(ENV_ID, RandomAgent(seed=1), "random", progress=False)
    assert random_agent["success_rate"] < 0.05 and random_agent["mean_reward"] < 0.05


@pytest.mark.parametrize("task_id", ["retail-cancel-00", "retail-return-00"])
def test_oracle_episode_through_gym_make(task_id):
    env = gym.make(ENV_ID)
    result = run_episode(env, OracleAgent(), task_id)
    assert result["reward"] == 1.0 and result["success"], result["breakdown"]
    env.close()


def _spoken(value: str) -> set[str]:
    return {value.casefold(), value.replace("_", " ").casefold()}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_instructions_are_calibrated(task_id):
    """No tool names, no ids the agent can look up, every string argument grounded in what the
    customer said or an earlier call returned."""
    task = PACKAGE.task(task_id)
    text = task.instruction.casefold()
    assert not any(name in text for name in PACKAGE.tools)
    assert not re.search(r"#r\d{7}|\b\d{10}\b|credit_card_|gift_card_|paypal_", text)
    assert not re.search(r"\b[a-z]+_[a-z]+_\d+\b", text), "a user id in the instruction"
    known = text + " " + json.dumps(task.user_facts).casefold()
    outputs = replay(PACKAGE, task.calls).results
    for index, tool_call in enumerate(task.calls):
        seen = known + " " + json.dumps(outputs[:index], default=str).casefold()
        for key, value in tool_call.arguments.items():
            if key in tool_call.masked:
                continue
            for text_value in _strings(value):
                if tool_call.name == "calculate":  # each number of the expression was seen
                    assert all(n in seen for n in re.findall(r"[\d.]+", text_value)), text_value
                    continue
                assert any(form in seen for form in _spoken(text_value)), (key, text_value)


def test_tasks_file_is_reproducible_from_the_seed():
    from envfactory_gym.envs.retail.build_tasks import build

    path = Path(PACKAGE.folder, "tasks.jsonl")
    assert [t.model_dump() for t in build()] == [json.loads(line) for line in path.open()]


def test_a_larger_database_keeps_the_first_group_and_the_tasks():
    bigger = PACKAGE.at_scale(2)
    assert bigger.template.execute("SELECT count(*) FROM orders").fetchone() == (2000,)
    first = "SELECT * FROM orders ORDER BY order_id"
    small_rows = set(PACKAGE.template.execute(first).fetchall())
    assert small_rows <= set(bigger.template.execute(first).fetchall())
    for task in PACKAGE.tasks[::10]:
        assert replay(bigger, task.calls).diff == task.expected_diff, task.id


def _tempting_write(db, task):
    """The write a refusal task's customer asks for, built from what the ground truth read."""
    results = replay(PACKAGE, task.calls).results
    order = next(r for r in results if isinstance(r, dict) and "order_id" in r)
    user = next(r for r in results if isinstance(r, dict) and "payment_methods" in r)
    item = order["items"][0]
    payer = order["payment_history"][0]["payment_method_id"]
    kind = task.id.rsplit("-", 1)[0].removeprefix("retail-")
    if kind == "cancel_shipped":
        return "cancel_pending_order", {"order_id": order["order_id"], "reason": "no longer needed"}
    if kind == "return_in_transit":
        return "return_delivered_order_items", {
            "order_id": order["order_id"], "item_ids": [item["item_id"]],
            "payment_method_id": payer}  # fmt: skip
    if kind == "gift_card_short":
        gift = next(k for k, m in user["payment_methods"].items() if m["source"] == "gift_card")
        return "modify_pending_order_payment", {"order_id": order["order_id"],
                                                "payment_method_id": gift}  # fmt: skip
    if kind == "unavailable_variant":
        product = results[-1]
        line = next(i for i in order["items"] if i["product_id"] == product["product_id"])
        new = next(
            v for v in product["variants"].values()
            if not v["available"]
            and sum(v["options"][k] != line["options"][k] for k in v["options"]) == 1
        )  # fmt: skip
        return "modify_pending_order_items", {
            "order_id": order["order_id"], "item_ids": [line["item_id"]],
            "new_item_ids": [new["item_id"]], "payment_method_id": payer}  # fmt: skip
    if kind == "other_product":
        new = db.value("SELECT item_id FROM items WHERE product_id != ? AND available = 1 "
                       "ORDER BY item_id LIMIT 1", (item["product_id"],))  # fmt: skip
    else:  # modify_again, second_request: another variant of the same product
        new = other_variant(db, item["item_id"])["item_id"]
    name = "modify_pending_order_items" if kind == "modify_again" else (
        "exchange_delivered_order_items")  # fmt: skip
    return name, {"order_id": order["order_id"], "item_ids": [item["item_id"]],
                  "new_item_ids": [new], "payment_method_id": payer}  # fmt: skip


@pytest.mark.parametrize(
    "task_id", [t.id for t in PACKAGE.tasks if t.kind == "refusal"]
)  # fmt: skip
def test_what_a_refusal_task_asks_for_the_tools_refuse(db, task_id):
    name, arguments = _tempting_write(db, PACKAGE.task(task_id))
    with pytest.raises(ToolError):
        call(db, name, **arguments)
    assert db.diff() == {}
