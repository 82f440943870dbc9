"""Build envs/retail/tasks.jsonl from the seeded database.

Run `python -m envfactory_gym.envs.retail.build_tasks`.

Each task kind picks real rows that fit it (a fixed random seed), writes the customer's opening
message in their own words (intent, not steps: no tool names, no order, item or payment ids; the
customer names their order by what is in it), then replays the ground-truth calls to record the
expected diff and the facts the answer must state.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from envfactory_gym.database import Database
from envfactory_gym.package import load_package
from envfactory_gym.replay import task_from_calls
from envfactory_gym.tasks import Task, ToolCall, write_tasks

Draft = tuple[str, list[ToolCall], Callable[[list], list[str]], dict[str, str]]
BRANDS = {"visa": "Visa", "mastercard": "Mastercard", "amex": "Amex", "discover": "Discover"}
NEW_STREETS = ("Juniper Court", "Orchard Road", "Bayside Drive", "Foxglove Lane", "Granite Way",
               "Sycamore Street", "Quarry Road", "Lantern Avenue")  # fmt: skip
NEW_CITIES = [("Raleigh", "NC", "276"), ("Tucson", "AZ", "857"), ("Omaha", "NE", "681"),
              ("Richmond", "VA", "232"), ("Boise", "ID", "837"), ("Spokane", "WA", "992"),
              ("Albany", "NY", "122"), ("Eugene", "OR", "974")]  # fmt: skip


def dollars(cents: int) -> str:
    """What a tool shows for an amount in cents (the tools' own `_dollars`, as text)."""
    return str(cents // 100) if cents % 100 == 0 else f"{cents / 100:.2f}".rstrip("0")


def money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def spoken(name: str) -> str:
    """A product as a customer says it: 'the hiking boots', 'the e-reader'."""
    return "the " + name.lower()


class Catalog:
    """The seeded database read once into plain dicts, and the questions the task kinds ask."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.users = {u["user_id"]: u for u in db.rows("SELECT * FROM users ORDER BY user_id")}
        self.methods: dict[str, list[dict]] = {}
        for m in db.rows("SELECT * FROM payment_methods ORDER BY payment_method_id"):
            self.methods.setdefault(m["user_id"], []).append(m)
        self.products = {p["product_id"]: p["name"] for p in db.rows("SELECT * FROM products")}
        option_names: dict[str, list[str]] = {}
        for row in db.rows("SELECT * FROM product_options ORDER BY product_id, position"):
            option_names.setdefault(row["product_id"], []).append(row["name"])
        self.items: dict[str, dict] = {}
        for row in db.rows("SELECT * FROM items ORDER BY item_id"):
            self.items[row["item_id"]] = {**row, "options": {}}
        for row in db.rows("SELECT * FROM item_options ORDER BY item_id, position"):
            item = self.items[row["item_id"]]
            item["options"][option_names[item["product_id"]][row["position"]]] = row["value"]
        self.variants: dict[str, list[dict]] = {}
        for item in self.items.values():
            self.variants.setdefault(item["product_id"], []).append(item)
        self.orders = {o["order_id"]: o for o in db.rows("SELECT * FROM orders ORDER BY order_id")}
        self.lines: dict[str, list[dict]] = {}
        for row in db.rows("SELECT * FROM order_items ORDER BY order_id, position"):
            item = self.items[row["item_id"]]
            self.lines.setdefault(row["order_id"], []).append(
                {**row, "product_id": item["product_id"], "name": self.products[
                    item["product_id"]], "options": item["options"]}
            )  # fmt: skip
        self.by_user: dict[str, list[dict]] = {}
        for order in sorted(self.orders.values(), key=lambda o: o["created_at"]):
            self.by_user.setdefault(order["user_id"], []).append(order)
        self.payments: dict[str, list[dict]] = {}
        for row in db.rows("SELECT * FROM payments ORDER BY payment_seq"):
            self.payments.setdefault(row["order_id"], []).append(row)
        self.parcels: dict[str, list[dict]] = {}
        for row in db.rows("SELECT * FROM fulfillments ORDER BY order_id, shipped_at"):
            self.parcels.setdefault(row["order_id"], []).append(row)
        self.requests = {r["order_id"]: r for r in db.rows("SELECT * FROM order_requests")}

    # ----- orders as the customer names them ------------------------------------------------
    def candidates(self, *statuses: str, max_orders: int = 5) -> list[dict]:
        """Orders in these statuses whose owner has at most `max_orders` orders and that their
        products tell apart from the owner's other orders."""
        found = []
        for order in self.orders.values():
            if (
                order["status"] in statuses
                and len(self.by_user[order["user_id"]]) <= max_orders
                and self.unique_products(order)
            ):
                found.append(order)
        return found

    def unique_products(self, order: dict) -> list[str]:
        """The product names in this order that none of the owner's other orders has."""
        others = {
            line["name"]
            for other in self.by_user[order["user_id"]]
            if other["order_id"] != order["order_id"]
            for line in self.lines[other["order_id"]]
        }
        names = [line["name"] for line in self.lines[order["order_id"]]]
        return sorted({n for n in names if n not in others}, key=names.index)

    def order_words(self, order: dict, first: str | None = None) -> str:
        """'my order with the x (and the y)': products only this order of the customer's has,
        `first` leading when it is one of them."""
        names = self.unique_products(order)
        if first in names:
            names = [first, *(n for n in names if n != first)]
        names = names[:2]
        return "my order with " + " and ".join(spoken(n) for n in names)

    def single_lines(self, order: dict) -> list[dict]:
        """The lines whose product appears once in the order (the customer can name them)."""
        count = Counter(line["name"] for line in self.lines[order["order_id"]])
        return [line for line in self.lines[order["order_id"]] if count[line["name"]] == 1]

    def paid_with(self, order: dict) -> dict:
        first = self.payments[order["order_id"]][0]["payment_method_id"]
        return next(m for m in self.methods[order["user_id"]] if m["payment_method_id"] == first)

    def gift_card(self, user_id: str) -> dict | None:
        cards = [m for m in self.methods[user_id] if m["source"] == "gift_card"]
        return cards[0] if len(cards) == 1 else None

    def describe_method(self, method: dict) -> str | None:
        """How the customer names a payment method; None if it would not single one out."""
        same = [m for m in self.methods[method["user_id"]] if m["source"] == method["source"]]
        if method["source"] == "gift_card":
            return "my gift card" if len(same) == 1 else None
        if method["source"] == "paypal":
            return "my PayPal account"
        card = "" if method["brand"] == "mastercard" else " card"
        return f"my {BRANDS[method['brand']]}{card} ending in {method['last_four']}"

    def swap_for(self, line: dict, rng: random.Random) -> tuple[dict, str, str, str] | None:
        """Another available variant of the line's product that differs in exactly one option
        (not a yes/no one): (variant, option, old value, new value)."""
        choices = []
        for variant in self.variants[line["product_id"]]:
            if not variant["available"] or variant["item_id"] == line["item_id"]:
                continue
            changed = [k for k, v in variant["options"].items() if line["options"][k] != v]
            if len(changed) == 1 and variant["options"][changed[0]] not in ("yes", "no"):
                option = changed[0]
                choices.append(
                    (variant, option, line["options"][option], variant["options"][option])
                )
        return rng.choice(choices) if choices else None

    # ----- who is talking -------------------------------------------------------------------
    def identity(self, user_id: str, rng: random.Random) -> tuple[str, ToolCall, dict[str, str]]:
        """The customer's greeting, the look-up it allows, and the facts they can repeat."""
        user = self.users[user_id]
        name = f"{user['first_name']} {user['last_name']}"
        facts = {"name": name, "zip": user["zip"], "email": user["email"]}
        if rng.random() < 0.7:
            greeting = rng.choice((
                f"Hi, this is {name}, my email is {user['email']}.",
                f"Hello! {name} here ({user['email']}).",
                f"Hi there, my email address is {user['email']}.",
            ))  # fmt: skip
            call = ToolCall(name="find_user_id_by_email", arguments={"email": user["email"]})
        else:
            greeting = rng.choice((
                f"Hi, I'm {name} and my zip code is {user['zip']}.",
                f"Hello, my name is {name}, zip code {user['zip']}. I don't remember which email "
                "I signed up with.",
            ))  # fmt: skip
            call = ToolCall(name="find_user_id_by_name_zip", arguments={
                "first_name": user["first_name"], "last_name": user["last_name"],
                "zip": user["zip"]})  # fmt: skip
            facts.pop("email")
        return greeting, call, facts

    def open_order(self, order: dict, rng: random.Random) -> tuple[str, list[ToolCall], dict]:
        """Greeting, the calls that reach the order (identify, profile, order) and the facts."""
        greeting, call, facts = self.identity(order["user_id"], rng)
        return (
            greeting,
            [
                call,
                ToolCall(name="get_user_details", arguments={"user_id": order["user_id"]}),
                ToolCall(name="get_order_details", arguments={"order_id": order["order_id"]}),
            ],
            facts,
        )


def _new_address(rng: random.Random, user: dict) -> dict[str, str]:
    city, state, prefix = rng.choice(NEW_CITIES)
    return {
        "address1": f"{rng.randint(12, 980)} {rng.choice(NEW_STREETS)}",
        "address2": rng.choice(("", "", f"Apt {rng.randint(2, 9)}{rng.choice('ABC')}")),
        "city": city, "state": state, "country": "USA", "zip": f"{prefix}{rng.randint(10, 99)}",
    }  # fmt: skip


def _address_words(address: dict[str, str]) -> str:
    second = f", {address['address2']}" if address["address2"] else ""
    return (f"{address['address1']}{second}, {address['city']}, {address['state']} "
            f"{address['zip']}, {address['country']}")  # fmt: skip


def _product_call(line: dict) -> ToolCall:
    return ToolCall(name="get_product_details", arguments={"product_id": line["product_id"]})


def _payment_amount(results: list, index: int = -1) -> list[str]:
    """The last payment-history line of the order a write returned (what it charged or
    refunded), as the tool shows it."""
    return [str(results[index]["payment_history"][-1]["amount"])]


# ----- read kinds ------------------------------------------------------------------------------
def gift_card_balance(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """Two gift cards: what is left on them together."""
    for user_id in cat.users:
        cards = [m for m in cat.methods[user_id] if m["source"] == "gift_card"]
        if len(cards) != 2 or not all(c["balance"] for c in cards):
            continue
        if cards[0]["balance"] == cards[1]["balance"]:
            continue
        greeting, call, facts = cat.identity(user_id, rng)
        expression = " + ".join(dollars(c["balance"]) for c in cards)
        yield (
            f"{greeting} I have two gift cards with you. How much is left on them altogether?",
            [call, ToolCall(name="get_user_details", arguments={"user_id": user_id}),
             ToolCall(name="calculate", arguments={"expression": expression})],
            lambda results: [results[-1]],
            facts,
        )  # fmt: skip


def tracking_number(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """A shipped order that went out in two parcels: which one carries a given product?"""
    for order in cat.candidates("processed"):
        parcels = cat.parcels[order["order_id"]]
        if len(parcels) < 2:
            continue
        for line in cat.single_lines(order):
            if line["name"] not in cat.unique_products(order):
                continue
            parcel = next(p for p in parcels if p["tracking_id"] == line["tracking_id"])
            greeting, calls, facts = cat.open_order(order, rng)
            yield (
                f"{greeting} I understand my order came in more than one package. Which carrier "
                f"has {spoken(line['name'])}, and what is its tracking number?",
                calls,
                lambda results, p=parcel: [p["tracking_id"], p["carrier"]],
                facts,
            )
            break


def return_refund(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("return requested"):
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I asked to send back some things from {cat.order_words(order)}. How "
            "much will I get refunded for them?",
            calls,
            lambda results, r=cat.requests[order["order_id"]]: [dollars(r["amount"])],
            facts,
        )


def variant_price(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for product_id, variants in sorted(cat.variants.items()):
        for variant in variants:
            if not variant["available"]:
                continue
            words = ", ".join(f"{k} {v}" for k, v in variant["options"].items())
            yield (
                f"Hi! I'm looking at your {cat.products[product_id].lower()}. Do you have one "
                f"with {words}, and what does it cost?",
                [ToolCall(name="list_all_product_types"),
                 ToolCall(name="get_product_details", arguments={"product_id": product_id})],
                lambda results, v=variant: [dollars(v["price"])],
                {},
            )  # fmt: skip


def cheapest_in_option(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for product_id, variants in sorted(cat.variants.items()):
        option = next(iter(variants[0]["options"]))
        values = sorted({v["options"][option] for v in variants})
        for value in values:
            fitting = sorted(
                (v for v in variants if v["available"] and v["options"][option] == value),
                key=lambda v: v["price"],
            )
            if len(fitting) < 2 or value in ("yes", "no"):
                continue
            yield (
                f"What is the cheapest {cat.products[product_id].lower()} you have in stock "
                f"with {option} {value}? Just tell me the price.",
                [ToolCall(name="list_all_product_types"),
                 ToolCall(name="get_product_details", arguments={"product_id": product_id})],
                lambda results, v=fitting[0]: [dollars(v["price"])],
                {},
            )  # fmt: skip


def paid_after_swap(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """An order whose items were modified: what it cost in the end, payments less refunds."""
    for order in cat.candidates("pending (item modified)"):
        history = cat.payments[order["order_id"]]
        if len(history) != 2:
            continue
        first, second = history
        sign = "+" if second["transaction_type"] == "payment" else "-"
        expression = f"{dollars(first['amount'])} {sign} {dollars(second['amount'])}"
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I changed an item on {cat.order_words(order)} and the price changed. "
            "What have I paid for that order altogether now?",
            [*calls, ToolCall(name="calculate", arguments={"expression": expression})],
            lambda results: [results[-1]],
            facts,
        )


# ----- single writes ---------------------------------------------------------------------------
def cancel(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending"):
        greeting, calls, facts = cat.open_order(order, rng)
        reason = rng.choice(("no longer needed", "ordered by mistake"))
        why = ("Plans changed, so it's no longer needed." if reason == "no longer needed"
               else "Honestly, it was ordered by mistake.")  # fmt: skip
        yield (
            f"{greeting} Please cancel {cat.order_words(order)} and refund me. {why}",
            [*calls, ToolCall(name="cancel_pending_order",
                              arguments={"order_id": order["order_id"], "reason": reason})],
            _payment_amount,
            {**facts, "reason": reason},
        )  # fmt: skip


def order_address(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending", "pending (item modified)"):
        address = _new_address(rng, cat.users[order["user_id"]])
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I'll be staying somewhere else when {cat.order_words(order)} arrives. "
            f"Please ship it to {_address_words(address)} instead.",
            [*calls, ToolCall(name="modify_pending_order_address",
                              arguments={"order_id": order["order_id"], **address})],
            lambda results: [],
            facts,
        )  # fmt: skip


def user_address(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for user_id, user in cat.users.items():
        if user_id not in cat.by_user:
            continue
        address = _new_address(rng, user)
        greeting, call, facts = cat.identity(user_id, rng)
        yield (
            f"{greeting} I've moved. Please change the address on my account to "
            f"{_address_words(address)}. My current orders can stay as they are.",
            [call, ToolCall(name="get_user_details", arguments={"user_id": user_id}),
             ToolCall(name="modify_user_address", arguments={"user_id": user_id, **address})],
            lambda results: [],
            facts,
        )  # fmt: skip


def payment_change(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending", "pending (item modified)"):
        history = cat.payments[order["order_id"]]
        if len(history) != 1:
            continue
        others = [
            m for m in cat.methods[order["user_id"]]
            if m["payment_method_id"] != history[0]["payment_method_id"]
            and (m["source"] != "gift_card" or m["balance"] >= history[0]["amount"])
            and cat.describe_method(m)
        ]  # fmt: skip
        if not others:
            continue
        method = rng.choice(others)
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} For {cat.order_words(order)}, I'd rather pay with "
            f"{cat.describe_method(method)} instead of what I used. Can you switch it?",
            [*calls, ToolCall(name="modify_pending_order_payment", arguments={
                "order_id": order["order_id"], "payment_method_id": method["payment_method_id"]})],
            lambda results: [],
            facts,
        )  # fmt: skip


def _swap_draft(cat: Catalog, order: dict, rng: random.Random) -> tuple | None:
    """One item of the order to change in one option, and a method for the difference."""
    lines = cat.single_lines(order)
    rng.shuffle(lines)
    unique = cat.unique_products(order)
    lines.sort(key=lambda line: line["name"] not in unique)  # named ones first
    for line in lines:
        swap = cat.swap_for(line, rng)
        if swap is None:
            continue
        variant, option, old, new = swap
        difference = variant["price"] - line["price"]
        methods = [
            m for m in cat.methods[order["user_id"]]
            if cat.describe_method(m) and (m["source"] != "gift_card" or m["balance"] >= difference)
        ]  # fmt: skip
        if not methods:
            continue
        method = rng.choice(methods)
        words = (f"change the {option} of {spoken(line['name'])} from {old} to {new}, with "
                 "everything else about it the same")  # fmt: skip
        return line, variant, method, difference, words
    return None


def modify_items(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending"):
        found = _swap_draft(cat, order, rng)
        if found is None:
            continue
        line, variant, method, difference, words = found
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} On {cat.order_words(order, line['name'])}, which hasn't shipped yet, "
            f"please {words}. "
            f"That's the only change I want. Any price difference goes through "
            f"{cat.describe_method(method)}.",
            [*calls, _product_call(line),
             ToolCall(name="modify_pending_order_items", arguments={
                 "order_id": order["order_id"], "item_ids": [line["item_id"]],
                 "new_item_ids": [variant["item_id"]],
                 "payment_method_id": method["payment_method_id"]})],
            (lambda results: _payment_amount(results)) if difference else (lambda results: []),
            facts,
        )  # fmt: skip


def return_items(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("delivered"):
        lines = cat.single_lines(order)
        if not lines:
            continue
        chosen = sorted(rng.sample(lines, min(len(lines), rng.choice((1, 1, 2)))),
                        key=lambda line: line["position"])  # fmt: skip
        original = cat.paid_with(order)
        card = cat.gift_card(order["user_id"])
        if card is not None and card is not original and rng.random() < 0.4:
            target, where = card, "my gift card"
        else:
            target, where = original, "the same way I paid"
        things = " and ".join(spoken(line["name"]) for line in chosen)
        where_from = f" from {cat.order_words(order, chosen[0]['name'])}"
        if chosen[0]["name"] in cat.unique_products(order):
            where_from = " I bought from you"
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I'd like to return {things}{where_from}. Please refund {where}.",
            [*calls, ToolCall(name="return_delivered_order_items", arguments={
                "order_id": order["order_id"], "item_ids": [line["item_id"] for line in chosen],
                "payment_method_id": target["payment_method_id"]})],
            lambda results: [str(results[-1]["return_refund_amount"])],
            facts,
        )  # fmt: skip


def exchange(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("delivered"):
        found = _swap_draft(cat, order, rng)
        if found is None:
            continue
        line, variant, method, difference, words = found
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} {cat.order_words(order, line['name']).capitalize()} arrived, but I'd "
            "like to exchange "
            f"one thing: {words}. Settle any price difference with {cat.describe_method(method)}.",
            [*calls, _product_call(line),
             ToolCall(name="exchange_delivered_order_items", arguments={
                 "order_id": order["order_id"], "item_ids": [line["item_id"]],
                 "new_item_ids": [variant["item_id"]],
                 "payment_method_id": method["payment_method_id"]})],
            (lambda results: [str(results[-1]["exchange_price_difference"])])
            if difference > 0 else (lambda results: []),
            facts,
        )  # fmt: skip


# ----- several writes --------------------------------------------------------------------------
def swap_and_reroute(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for draft in modify_items(cat, rng):
        instruction, calls, outputs, facts = draft
        order_id = calls[2].arguments["order_id"]
        address = _new_address(rng, cat.users[cat.orders[order_id]["user_id"]])
        yield (
            f"{instruction} Also, please ship that order to {_address_words(address)} instead.",
            [*calls, ToolCall(name="modify_pending_order_address",
                              arguments={"order_id": order_id, **address})],
            lambda results, o=outputs: o(results[:-1]),
            facts,
        )  # fmt: skip


def move_house(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """New default address, and the one pending order goes there too."""
    for order in cat.candidates("pending", "pending (item modified)"):
        user_id = order["user_id"]
        if sum(o["status"].startswith("pending") for o in cat.by_user[user_id]) != 1:
            continue
        address = _new_address(rng, cat.users[user_id])
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I just moved to {_address_words(address)}. Please update my account "
            f"with the new address, and send {cat.order_words(order)}, which hasn't shipped yet, "
            "there as well.",
            [*calls,
             ToolCall(name="modify_user_address", arguments={"user_id": user_id, **address}),
             ToolCall(name="modify_pending_order_address",
                      arguments={"order_id": order["order_id"], **address})],
            lambda results: [],
            facts,
        )  # fmt: skip


def cancel_and_return(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    returns = {}
    for draft in return_items(cat, rng):
        returns.setdefault(draft[1][1].arguments["user_id"], draft)
    for instruction, calls, _, facts in cancel(cat, rng):
        other = returns.get(calls[1].arguments["user_id"])
        if other is None:
            continue
        ask = other[0].split(" I'd like to return ", 1)[1]
        yield (
            f"{instruction} And one more thing: I'd like to return {ask}",
            [*calls, other[1][2], other[1][3]],
            lambda results: [str(results[3]["payment_history"][-1]["amount"]),
                             str(results[-1]["return_refund_amount"])],
            facts,
        )  # fmt: skip


def reroute_and_repay(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for instruction, calls, _, facts in payment_change(cat, rng):
        order_id = calls[2].arguments["order_id"]
        address = _new_address(rng, cat.users[cat.orders[order_id]["user_id"]])
        yield (
            f"{instruction} And please deliver that order to {_address_words(address)}.",
            [*calls, ToolCall(name="modify_pending_order_address",
                              arguments={"order_id": order_id, **address})],
            lambda results: [],
            facts,
        )  # fmt: skip


# ----- refusals --------------------------------------------------------------------------------
def cancel_shipped(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("processed"):
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} Please cancel {cat.order_words(order)}, I don't need it anymore.",
            calls,
            lambda results: [],
            {**facts, "reason": "no longer needed"},
        )


def modify_again(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending (item modified)"):
        found = _swap_draft(cat, order, rng)
        if found is None:
            continue
        line, variant, method, difference, words = found
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I already changed something on "
            f"{cat.order_words(order, line['name'])}, but now I'd "
            f"also like to {words}. Use {cat.describe_method(method)} for any difference.",
            calls,
            lambda results: [],
            facts,
        )


def return_in_transit(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("processed"):
        lines = cat.single_lines(order)
        if not lines:
            continue
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I want to return {spoken(lines[0]['name'])} from "
            f"{cat.order_words(order, lines[0]['name'])} and get my money back the same way I "
            "paid.",
            calls,
            lambda results: [],
            facts,
        )


def second_request(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """A return was already asked for; now the customer wants to exchange something too."""
    for order in cat.candidates("return requested"):
        found = _swap_draft(cat, order, rng)
        if found is None:
            continue
        line, variant, method, difference, words = found
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I already started a return on {cat.order_words(order, line['name'])}. I'd "
            "also like "
            f"to exchange something from it: {words}. Use {cat.describe_method(method)} for any "
            "difference.",
            calls,
            lambda results: [],
            facts,
        )


def other_product(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    """An exchange for a different product altogether."""
    names = sorted(cat.products.values())
    for order in cat.candidates("delivered"):
        lines = cat.single_lines(order)
        if not lines:
            continue
        line = lines[0]
        inside = {other["name"] for other in cat.lines[order["order_id"]]}
        wanted = rng.choice([n for n in names if n not in inside])
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} {cat.order_words(order, line['name']).capitalize()} was delivered. "
            "I'd like to "
            f"exchange {spoken(line['name'])} for {spoken(wanted)} instead; I'll pay any "
            "difference the same way I paid for the order.",
            calls,
            lambda results: [],
            facts,
        )


def unavailable_variant(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending"):
        unique = cat.unique_products(order)
        for line in sorted(cat.single_lines(order), key=lambda line: line["name"] not in unique):
            options = [
                v for v in cat.variants[line["product_id"]]
                if not v["available"] and sum(v["options"][k] != line["options"][k]
                                              for k in v["options"]) == 1
            ]  # fmt: skip
            options = [
                v for v in options
                if all(v["options"][k] not in ("yes", "no") for k in v["options"]
                       if v["options"][k] != line["options"][k])
            ]  # fmt: skip
            if not options:
                continue
            variant = options[0]
            option = next(k for k in variant["options"]
                          if variant["options"][k] != line["options"][k])  # fmt: skip
            method = cat.paid_with(order)
            greeting, calls, facts = cat.open_order(order, rng)
            yield (
                f"{greeting} On {cat.order_words(order, line['name'])}, please change the "
                f"{option} of {spoken(line['name'])} from {line['options'][option]} to "
                f"{variant['options'][option]}, everything else the same. Use "
                f"{cat.describe_method(method)} for any difference. If that exact one isn't "
                "possible, leave the order as it is.",
                [*calls, _product_call(line)],
                lambda results: [],
                facts,
            )
            break


def gift_card_short(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    for order in cat.candidates("pending", "pending (item modified)"):
        card = cat.gift_card(order["user_id"])
        history = cat.payments[order["order_id"]]
        if card is None or history[0]["payment_method_id"] == card["payment_method_id"]:
            continue
        if card["balance"] >= sum(p["amount"] for p in history) or card["balance"] == 0:
            continue
        greeting, calls, facts = cat.open_order(order, rng)
        yield (
            f"{greeting} I'd like {cat.order_words(order)} to be paid entirely with my gift "
            "card instead. If the gift card can't cover it, just leave the payment as it is.",
            calls,
            lambda results: [],
            facts,
        )


# ----- hand-offs -------------------------------------------------------------------------------
COMPLAINTS = [
    "a package the tracking says was delivered but never reached my door",
    "a blender that arrived with a cracked jar, and I have photos of the damage",
    "a charge on my card statement from your store that I don't recognize",
    "setting up a business account for bulk orders for my office",
    "a warranty repair for a laptop I bought from you last year",
    "a delivery driver who was rude to my elderly mother",
]


def human_handoff(cat: Catalog, rng: random.Random) -> Iterator[Draft]:
    users = sorted(cat.users)
    rng.shuffle(users)
    for user_id, complaint in zip(users, COMPLAINTS, strict=False):
        user = cat.users[user_id]
        yield (
            f"Hi, my email is {user['email']}. I need to talk to someone about {complaint}. "
            "Please put me through to a human agent.",
            [ToolCall(name="transfer_to_human_agents",
                      arguments={"summary": f"Customer asks for a human about {complaint}."},
                      masked=["summary"])],
            lambda results: [],
            {"email": user["email"], "name": f"{user['first_name']} {user['last_name']}"},
        )  # fmt: skip


KINDS: list[tuple[str, str, Callable[[Catalog, random.Random], Iterator[Draft]], int]] = [
    ("gift_card_balance", "read", gift_card_balance, 5),
    ("tracking_number", "read", tracking_number, 5),
    ("return_refund", "read", return_refund, 4),
    ("variant_price", "read", variant_price, 5),
    ("cheapest_in_option", "read", cheapest_in_option, 4),
    ("paid_after_swap", "read", paid_after_swap, 4),
    ("cancel", "write", cancel, 8),
    ("order_address", "write", order_address, 5),
    ("user_address", "write", user_address, 4),
    ("payment_change", "write", payment_change, 5),
    ("modify_items", "write", modify_items, 6),
    ("return", "write", return_items, 8),
    ("exchange", "write", exchange, 6),
    ("swap_and_reroute", "multi_write", swap_and_reroute, 4),
    ("move_house", "multi_write", move_house, 4),
    ("cancel_and_return", "multi_write", cancel_and_return, 4),
    ("reroute_and_repay", "multi_write", reroute_and_repay, 4),
    ("cancel_shipped", "refusal", cancel_shipped, 4),
    ("modify_again", "refusal", modify_again, 4),
    ("return_in_transit", "refusal", return_in_transit, 3),
    ("second_request", "refusal", second_request, 3),
    ("other_product", "refusal", other_product, 3),
    ("unavailable_variant", "refusal", unavailable_variant, 3),
    ("gift_card_short", "refusal", gift_card_short, 3),
    ("human_handoff", "handoff", human_handoff, 4),
]


def build(seed: int = 11) -> list[Task]:
    package = load_package("retail")
    db = Database(package.template)
    cat = Catalog(db)
    tasks: list[Task] = []
    used_orders: set[str] = set()
    for name, kind, make, count in KINDS:
        rng = random.Random(f"{seed}:{name}")
        drafts = list(make(cat, rng))
        rng.shuffle(drafts)
        made = 0
        for instruction, calls, outputs, facts in drafts:
            if made == count:
                break
            orders = {c.arguments["order_id"] for c in calls if "order_id" in c.arguments}
            if orders & used_orders:
                continue  # one task per order: a varied set
            try:
                task = task_from_calls(
                    package,
                    calls,
                    outputs,
                    id=f"retail-{name}-{made:02d}",
                    split="test" if made % 4 == 3 else "train",
                    kind=kind,
                    instruction=instruction,
                    user_facts=facts,
                )
            except ValueError:
                continue
            used_orders |= orders
            tasks.append(task)
            made += 1
        if made < count:
            raise RuntimeError(f"only {made} of {count} {name} tasks could be built")
    return tasks


def main() -> None:
    tasks = build()
    path = Path(__file__).with_name("tasks.jsonl")
    write_tasks(path, tasks)
    print(f"wrote {len(tasks)} tasks to {path}")
    print(json.dumps(Counter(task.kind for task in tasks)))


if __name__ == "__main__":
    main()
