"""Larkspur Market tools. Names, arguments and semantics follow tau2-bench's retail domain: look
customers up by email or by name and zip code, read orders, products and their variants (items),
and change orders: cancel or modify pending ones (address, payment method, items once), and ask
for a return or an exchange of delivered ones. Money is kept in cents and shown in dollars."""

from __future__ import annotations

from typing import Any, Literal

from envfactory_gym import Database, ToolError, tool
from envfactory_gym.tools import arithmetic

NOW = "2025-03-18T11:30:00"
PENDING = ("pending", "pending (item modified)")
CancelReason = Literal["no longer needed", "ordered by mistake"]


# ----- helpers (not tools) -------------------------------------------------------------------
def _dollars(cents: int) -> int | float:
    """Cents as dollars: 4999 -> 49.99, 5000 -> 50."""
    return cents // 100 if cents % 100 == 0 else round(cents / 100, 2)


def _user(db: Database, user_id: str) -> dict:
    found = db.row("SELECT * FROM users WHERE user_id = ?", (user_id,))
    if found is None:
        raise ToolError(f"user {user_id!r} not found; find the user id by email or by name and zip")
    return found


def _order(db: Database, order_id: str) -> dict:
    found = db.row("SELECT * FROM orders WHERE order_id = ?", (order_id.strip(),))
    if found is None:
        hint = (
            "" if order_id.startswith("#") else " (order ids start with '#', such as '#R1234567')"
        )
        raise ToolError(f"order {order_id!r} not found{hint}")
    return found


def _item(db: Database, item_id: str) -> dict:
    found = db.row(
        "SELECT i.*, p.name FROM items i JOIN products p USING (product_id) WHERE i.item_id = ?",
        (item_id,),
    )
    if found is None:
        raise ToolError(
            f"item {item_id!r} not found (an item id names one variant; product ids are different)"
        )
    return found


def _options(db: Database, item_id: str) -> dict[str, str]:
    rows = db.rows(
        "SELECT po.name, io.value FROM item_options io JOIN items i ON i.item_id = io.item_id "
        "JOIN product_options po ON po.product_id = i.product_id AND po.position = io.position "
        "WHERE io.item_id = ? ORDER BY io.position",
        (item_id,),
    )
    return {row["name"]: row["value"] for row in rows}


def _payment_method(db: Database, user_id: str, payment_method_id: str) -> dict:
    found = db.row(
        "SELECT * FROM payment_methods WHERE payment_method_id = ? AND user_id = ?",
        (payment_method_id, user_id),
    )
    if found is None:
        raise ToolError(
            f"payment method {payment_method_id!r} is not in the profile of the order's owner"
        )
    return found


def _record(db: Database, order_id: str, method: dict, kind: str, cents: int) -> None:
    """A payment or refund line on the order; a gift card's balance moves at once (a card or
    PayPal is charged or refunded by the bank, outside the store)."""
    if cents <= 0:
        return
    if method["source"] == "gift_card":
        change = -cents if kind == "payment" else cents
        if method["balance"] + change < 0:
            raise ToolError(
                f"gift card {method['payment_method_id']} has {_dollars(method['balance'])} "
                f"dollars, not enough for {_dollars(cents)}"
            )
        db.execute(
            "UPDATE payment_methods SET balance = balance + ? WHERE payment_method_id = ?",
            (change, method["payment_method_id"]),
        )
        method["balance"] += change
    db.execute(
        "INSERT INTO payments (order_id, payment_method_id, transaction_type, amount) "
        "VALUES (?, ?, ?, ?)",
        (order_id, method["payment_method_id"], kind, cents),
    )


def _lines(db: Database, order_id: str) -> list[dict]:
    return db.rows(
        "SELECT oi.position, oi.item_id, oi.price, oi.tracking_id, i.product_id, p.name "
        "FROM order_items oi JOIN items i ON i.item_id = oi.item_id "
        "JOIN products p ON p.product_id = i.product_id "
        "WHERE oi.order_id = ? ORDER BY oi.position",
        (order_id,),
    )


def _pick_lines(lines: list[dict], item_ids: list[str]) -> list[dict]:
    """The order lines the item ids name, one line per id (an item ordered twice may be named
    twice)."""
    if not item_ids:
        raise ToolError("name at least one item id")
    free = list(lines)
    picked = []
    for item_id in item_ids:
        line = next((line for line in free if line["item_id"] == item_id), None)
        if line is None:
            count = sum(line["item_id"] == item_id for line in lines)
            raise ToolError(
                f"item {item_id} is not in the order" if count == 0
                else f"item {item_id} appears only {count} time(s) in the order"
            )  # fmt: skip
        free.remove(line)
        picked.append(line)
    return picked


def _swaps(db: Database, lines: list[dict], new_item_ids: list[str]) -> list[tuple[dict, dict]]:
    """Pair each order line with the variant it becomes: another available variant of the
    same product."""
    if len(lines) != len(new_item_ids):
        raise ToolError(
            f"{len(lines)} item ids but {len(new_item_ids)} new item ids: give one new item "
            "for each item, in the same order"
        )
    pairs = []
    for line, new_id in zip(lines, new_item_ids, strict=True):
        if new_id == line["item_id"]:
            raise ToolError(f"new item {new_id} is the same as the item it replaces")
        new = _item(db, new_id)
        if new["product_id"] != line["product_id"]:
            raise ToolError(
                f"item {new_id} is a {new['name']}, not a {line['name']}: an item can only be "
                "swapped for another variant of the same product"
            )
        if not new["available"]:
            raise ToolError(f"item {new_id} ({line['name']}) is not available right now")
        pairs.append((line, new))
    return pairs


def _address(address1: str, address2: str, city: str, state: str, country: str, zip: str) -> dict:
    fields = {"address1": address1, "address2": address2, "city": city, "state": state,
              "country": country, "zip": zip}  # fmt: skip
    fields = {key: " ".join(value.split()) for key, value in fields.items()}
    missing = [k for k, v in fields.items() if k != "address2" and not v]
    if missing:
        raise ToolError(f"the address needs {', '.join(missing)}")
    return fields


def _method_view(method: dict) -> dict:
    view: dict[str, Any] = {"source": method["source"]}
    if method["source"] == "credit_card":
        view.update(brand=method["brand"], last_four=method["last_four"])
    elif method["source"] == "gift_card":
        view["balance"] = _dollars(method["balance"])
    return view


def _user_view(db: Database, user_id: str) -> dict:
    user = _user(db, user_id)
    methods = db.rows(
        "SELECT * FROM payment_methods WHERE user_id = ? ORDER BY payment_method_id", (user_id,)
    )
    orders = db.rows(
        "SELECT order_id FROM orders WHERE user_id = ? ORDER BY created_at", (user_id,)
    )
    return {
        "user_id": user["user_id"],
        "name": {"first_name": user["first_name"], "last_name": user["last_name"]},
        "email": user["email"],
        "address": {
            k: user[k] for k in ("address1", "address2", "city", "state", "country", "zip")
        },
        "payment_methods": {m["payment_method_id"]: _method_view(m) for m in methods},
        "orders": [order["order_id"] for order in orders],
    }


def _order_view(db: Database, order_id: str) -> dict:
    order = _order(db, order_id)
    order_id = order["order_id"]
    lines = _lines(db, order_id)
    view: dict[str, Any] = {
        "order_id": order_id,
        "user_id": order["user_id"],
        "status": order["status"],
        "created_at": order["created_at"],
        "address": {
            k: order[k] for k in ("address1", "address2", "city", "state", "country", "zip")
        },
        "items": [
            {
                "name": line["name"],
                "product_id": line["product_id"],
                "item_id": line["item_id"],
                "price": _dollars(line["price"]),
                "options": _options(db, line["item_id"]),
            }
            for line in lines
        ],
        "fulfillments": [
            {
                "tracking_id": parcel["tracking_id"],
                "carrier": parcel["carrier"],
                "shipped_at": parcel["shipped_at"],
                "delivered_at": parcel["delivered_at"],
                "item_ids": [
                    ln["item_id"] for ln in lines if ln["tracking_id"] == parcel["tracking_id"]
                ],
            }
            for parcel in db.rows(
                "SELECT * FROM fulfillments WHERE order_id = ? ORDER BY shipped_at", (order_id,)
            )
        ],
        "payment_history": [
            {
                "transaction_type": p["transaction_type"],
                "amount": _dollars(p["amount"]),
                "payment_method_id": p["payment_method_id"],
            }
            for p in db.rows(
                "SELECT * FROM payments WHERE order_id = ? ORDER BY payment_seq", (order_id,)
            )
        ],
    }
    if order["cancel_reason"]:
        view["cancel_reason"] = order["cancel_reason"]
    request = db.row("SELECT * FROM order_requests WHERE order_id = ?", (order_id,))
    if request is not None:
        covered = db.rows(
            "SELECT r.new_item_id, oi.item_id FROM request_items r JOIN order_items oi "
            "ON oi.order_id = r.order_id AND oi.position = r.position "
            "WHERE r.order_id = ? ORDER BY r.position",
            (order_id,),
        )
        kind = request["kind"]
        view[f"{kind}_items"] = [row["item_id"] for row in covered]
        if kind == "exchange":
            view["exchange_new_items"] = [row["new_item_id"] for row in covered]
        view[f"{kind}_payment_method_id"] = request["payment_method_id"]
        if kind == "exchange":
            view["exchange_price_difference"] = _dollars(request["amount"])
        else:
            view["return_refund_amount"] = _dollars(request["amount"])
        view[f"{kind}_requested_at"] = request["requested_at"]
    return view


# ----- read tools ----------------------------------------------------------------------------
@tool
def find_user_id_by_email(db: Database, email: str) -> str:
    """Find a customer's user id by their email address. Try this first; if the customer does
    not remember their email, use find_user_id_by_name_zip.

    Args:
        email: The customer's email, such as 'sara.doe123@example.com'.
    """
    found = db.value("SELECT user_id FROM users WHERE email = ?", (email.strip(),))
    if found is None:
        raise ToolError(f"no customer has the email {email!r}")
    return found


@tool
def find_user_id_by_name_zip(db: Database, first_name: str, last_name: str, zip: str) -> str:
    """Find a customer's user id by first name, last name and the zip code of their address.
    Use it only when the customer cannot give their email.

    Args:
        first_name: The customer's first name, such as 'Sara'.
        last_name: The customer's last name, such as 'Doe'.
        zip: The zip code of the customer's address, such as '78701'.
    """
    found = db.value(
        "SELECT user_id FROM users WHERE zip = ? AND last_name = ? AND first_name = ?",
        (zip.strip(), last_name.strip(), first_name.strip()),
    )
    if found is None:
        raise ToolError(f"no customer named {first_name} {last_name} with zip code {zip}")
    return found


@tool
def get_user_details(db: Database, user_id: str) -> dict:
    """Get a customer's details: name, email, default address, payment methods (gift cards with
    their balance) and the ids of their orders, oldest first.

    Args:
        user_id: The user id, such as 'sara_doe_4961'.
    """
    return _user_view(db, user_id)


@tool
def get_order_details(db: Database, order_id: str) -> dict:
    """Get an order: status, shipping address, items (with their options and the price paid),
    shipments with tracking numbers, payment history, and any cancellation, return or exchange.

    Args:
        order_id: The order id, such as '#R1234567'. It starts with a '#'.
    """
    return _order_view(db, order_id)


@tool
def get_product_details(db: Database, product_id: str) -> dict:
    """Get a product and all its variants (items): each item's options, price and whether it
    is available.

    Args:
        product_id: The product id, such as '6086499569'. It is not an item id.
    """
    product = db.row("SELECT * FROM products WHERE product_id = ?", (product_id,))
    if product is None:
        raise ToolError(
            f"product {product_id!r} not found (list_all_product_types gives every product id; "
            "an item id names a variant, not a product)"
        )
    names = [
        row["name"]
        for row in db.rows(
            "SELECT name FROM product_options WHERE product_id = ? ORDER BY position",
            (product_id,),
        )
    ]
    variants: dict[str, dict] = {}
    for row in db.rows(
        "SELECT i.item_id, i.price, i.available, o.position, o.value FROM items i "
        "JOIN item_options o ON o.item_id = i.item_id WHERE i.product_id = ? "
        "ORDER BY i.item_id, o.position",
        (product_id,),
    ):
        variant = variants.setdefault(row["item_id"], {
            "item_id": row["item_id"], "options": {}, "available": bool(row["available"]),
            "price": _dollars(row["price"])})  # fmt: skip
        variant["options"][names[row["position"]]] = row["value"]
    return {"name": product["name"], "product_id": product_id, "variants": variants}


@tool
def get_item_details(db: Database, item_id: str) -> dict:
    """Get one item (a variant of a product): its product, options, price and availability.

    Args:
        item_id: The item id, such as '1008292230'. It is not a product id.
    """
    item = _item(db, item_id)
    return {
        "item_id": item_id, "product_id": item["product_id"], "name": item["name"],
        "options": _options(db, item_id), "available": bool(item["available"]),
        "price": _dollars(item["price"]),
    }  # fmt: skip


@tool
def list_all_product_types(db: Database) -> dict[str, str]:
    """List every product type the store sells, as name -> product id, sorted by name. Each
    product has several variants (items) with their own item ids and options."""
    return {row["name"]: row["product_id"] for row in
            db.rows("SELECT name, product_id FROM products ORDER BY name")}  # fmt: skip


# ----- write tools ---------------------------------------------------------------------------
@tool(kind="write")
def cancel_pending_order(db: Database, order_id: str, reason: CancelReason) -> dict:
    """Cancel a pending order and refund it in full to the methods that paid: at once to a gift
    card, in 5 to 7 business days to a card or PayPal. Only an order whose status is exactly
    'pending' can be cancelled. Explain the details and get the customer's explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        reason: Why the customer cancels: 'no longer needed' or 'ordered by mistake'.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        raise ToolError(
            f"order {order['order_id']} is '{order['status']}': only a 'pending' order can be "
            "cancelled"
        )
    paid = db.rows(
        "SELECT payment_method_id, sum(CASE transaction_type WHEN 'payment' THEN amount "
        "ELSE -amount END) AS net, min(payment_seq) AS first FROM payments "
        "WHERE order_id = ? GROUP BY payment_method_id ORDER BY first",
        (order["order_id"],),
    )
    for line in paid:
        if line["net"] > 0:
            method = _payment_method(db, order["user_id"], line["payment_method_id"])
            _record(db, order["order_id"], method, "refund", line["net"])
    db.execute(
        "UPDATE orders SET status = 'cancelled', cancel_reason = ? WHERE order_id = ?",
        (reason, order["order_id"]),
    )
    return _order_view(db, order["order_id"])


@tool(kind="write")
def modify_pending_order_address(
    db: Database,
    order_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> dict:
    """Change the shipping address of a pending order. Explain the change and get the
    customer's explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        address1: The first line of the address, such as '123 Main Street'.
        address2: The second line of the address, such as 'Apt 1', or '' if there is none.
        city: The city, such as 'Austin'.
        state: The state, such as 'TX'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '78701'.
    """
    order = _order(db, order_id)
    if order["status"] not in PENDING:
        raise ToolError(
            f"order {order['order_id']} is '{order['status']}': only a pending order's address "
            "can be changed"
        )
    fields = _address(address1, address2, city, state, country, zip)
    db.update("orders", "order_id", order["order_id"], fields)
    return _order_view(db, order["order_id"])


@tool(kind="write")
def modify_pending_order_items(
    db: Database,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> dict:
    """Swap items of a pending order for other available variants of the same products; the
    price difference is charged to, or refunded to, the given payment method (a gift card must
    cover a charge). An order's items can be modified only once: its status becomes 'pending
    (item modified)', so name every item to change in this one call. Explain the change and get
    the customer's explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        item_ids: The item ids to change, such as ['1008292230']; an item ordered twice may
            appear twice.
        new_item_ids: The item each one becomes, in the same order: a variant of the same
            product.
        payment_method_id: The payment method that pays or receives the price difference, such
            as 'gift_card_1234567' or 'credit_card_1234567', from the customer's profile.
    """
    order = _order(db, order_id)
    if order["status"] != "pending":
        detail = (
            "its items were already modified once, which is the limit"
            if order["status"] == "pending (item modified)"
            else "only a 'pending' order's items can be modified"
        )
        raise ToolError(f"order {order['order_id']} is '{order['status']}': {detail}")
    pairs = _swaps(db, _pick_lines(_lines(db, order["order_id"]), item_ids), new_item_ids)
    method = _payment_method(db, order["user_id"], payment_method_id)
    difference = sum(new["price"] - line["price"] for line, new in pairs)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise ToolError(
            f"gift card {payment_method_id} has {_dollars(method['balance'])} dollars, not enough "
            f"for the price difference of {_dollars(difference)}"
        )
    kind = "payment" if difference > 0 else "refund"
    _record(db, order["order_id"], method, kind, abs(difference))
    for line, new in pairs:
        db.execute(
            "UPDATE order_items SET item_id = ?, price = ? WHERE order_id = ? AND position = ?",
            (new["item_id"], new["price"], order["order_id"], line["position"]),
        )
    db.execute(
        "UPDATE orders SET status = 'pending (item modified)' WHERE order_id = ?",
        (order["order_id"],),
    )
    return _order_view(db, order["order_id"])


@tool(kind="write")
def modify_pending_order_payment(db: Database, order_id: str, payment_method_id: str) -> dict:
    """Pay for a pending order with another payment method: the new method is charged the
    order's amount and the old one refunded (a gift card must cover the amount). Only an order
    with a single payment on it can change method. Explain the change and get the customer's
    explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        payment_method_id: The new payment method, such as 'gift_card_1234567' or
            'paypal_1234567', from the customer's profile.
    """
    order = _order(db, order_id)
    if order["status"] not in PENDING:
        raise ToolError(
            f"order {order['order_id']} is '{order['status']}': only a pending order's payment "
            "method can be changed"
        )
    history = db.rows(
        "SELECT * FROM payments WHERE order_id = ? ORDER BY payment_seq", (order["order_id"],)
    )
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise ToolError(
            f"order {order['order_id']} has {len(history)} payment transactions: the payment "
            "method can only be changed while the order has a single payment"
        )
    old = history[0]
    if old["payment_method_id"] == payment_method_id:
        raise ToolError(f"order {order['order_id']} is already paid with {payment_method_id}")
    method = _payment_method(db, order["user_id"], payment_method_id)
    if method["source"] == "gift_card" and method["balance"] < old["amount"]:
        raise ToolError(
            f"gift card {payment_method_id} has {_dollars(method['balance'])} dollars, not enough "
            f"for the order's {_dollars(old['amount'])}"
        )
    _record(db, order["order_id"], method, "payment", old["amount"])
    previous = _payment_method(db, order["user_id"], old["payment_method_id"])
    _record(db, order["order_id"], previous, "refund", old["amount"])
    return _order_view(db, order["order_id"])


@tool(kind="write")
def modify_user_address(
    db: Database,
    user_id: str,
    address1: str,
    address2: str,
    city: str,
    state: str,
    country: str,
    zip: str,
) -> dict:
    """Change a customer's default address (orders already placed keep theirs). Explain the
    change and get the customer's explicit yes first.

    Args:
        user_id: The user id, such as 'sara_doe_4961'.
        address1: The first line of the address, such as '123 Main Street'.
        address2: The second line of the address, such as 'Apt 1', or '' if there is none.
        city: The city, such as 'Austin'.
        state: The state, such as 'TX'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '78701'.
    """
    user = _user(db, user_id)
    fields = _address(address1, address2, city, state, country, zip)
    clash = db.value(
        "SELECT user_id FROM users WHERE zip = ? AND last_name = ? AND first_name = ? "
        "AND user_id != ?",
        (fields["zip"], user["last_name"], user["first_name"], user_id),
    )
    if clash is not None:
        raise ToolError(
            "another customer with the same name has this zip code; transfer to a human agent"
        )
    db.update("users", "user_id", user_id, fields)
    return _user_view(db, user_id)


@tool(kind="write")
def return_delivered_order_items(
    db: Database, order_id: str, item_ids: list[str], payment_method_id: str
) -> dict:
    """Ask for a return of items of a delivered order. The status becomes 'return requested'
    and the customer gets an email saying how to send the items back; the refund, the price paid
    for them, goes to the original payment method or a gift card of the customer once they
    arrive. An order can have one return or one exchange, so name every item in this one call.
    Explain the details and get the customer's explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        item_ids: The item ids to return, such as ['1008292230']; an item ordered twice may
            appear twice.
        payment_method_id: Where the refund goes: the method that paid for the order, or a gift
            card of the customer, such as 'gift_card_1234567'.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError(
            f"order {order['order_id']} is '{order['status']}': only a 'delivered' order's items "
            "can be returned"
        )
    method = _payment_method(db, order["user_id"], payment_method_id)
    original = db.value(
        "SELECT payment_method_id FROM payments WHERE order_id = ? ORDER BY payment_seq LIMIT 1",
        (order["order_id"],),
    )
    if method["source"] != "gift_card" and payment_method_id != original:
        raise ToolError(
            f"a refund goes to the original payment method ({original}) or to a gift card, "
            f"not to {payment_method_id}"
        )
    lines = _pick_lines(_lines(db, order["order_id"]), item_ids)
    refund = sum(line["price"] for line in lines)
    db.insert("order_requests", {"order_id": order["order_id"], "kind": "return",
                                 "payment_method_id": payment_method_id, "amount": refund,
                                 "requested_at": NOW})  # fmt: skip
    for line in lines:
        db.insert("request_items", {"order_id": order["order_id"], "position": line["position"],
                                    "new_item_id": None})  # fmt: skip
    db.execute(
        "UPDATE orders SET status = 'return requested' WHERE order_id = ?", (order["order_id"],)
    )
    return _order_view(db, order["order_id"])


@tool(kind="write")
def exchange_delivered_order_items(
    db: Database,
    order_id: str,
    item_ids: list[str],
    new_item_ids: list[str],
    payment_method_id: str,
) -> dict:
    """Ask for an exchange of items of a delivered order for other available variants of the
    same products. The status becomes 'exchange requested' and the customer gets an email about
    sending the old items back; no new order is needed. The price difference will be charged to,
    or refunded to, the given payment method (a gift card must cover a charge). An order can have
    one return or one exchange, so name every item in this one call. Explain the details and get
    the customer's explicit yes first.

    Args:
        order_id: The order id, such as '#R1234567'.
        item_ids: The item ids to exchange, such as ['1008292230']; an item ordered twice may
            appear twice.
        new_item_ids: The item each one is exchanged for, in the same order: a variant of the
            same product.
        payment_method_id: The payment method that pays or receives the price difference, such
            as 'gift_card_1234567' or 'credit_card_1234567', from the customer's profile.
    """
    order = _order(db, order_id)
    if order["status"] != "delivered":
        raise ToolError(
            f"order {order['order_id']} is '{order['status']}': only a 'delivered' order's items "
            "can be exchanged"
        )
    pairs = _swaps(db, _pick_lines(_lines(db, order["order_id"]), item_ids), new_item_ids)
    method = _payment_method(db, order["user_id"], payment_method_id)
    difference = sum(new["price"] - line["price"] for line, new in pairs)
    if method["source"] == "gift_card" and method["balance"] < difference:
        raise ToolError(
            f"gift card {payment_method_id} has {_dollars(method['balance'])} dollars, not enough "
            f"for the price difference of {_dollars(difference)}"
        )
    db.insert("order_requests", {"order_id": order["order_id"], "kind": "exchange",
                                 "payment_method_id": payment_method_id, "amount": difference,
                                 "requested_at": NOW})  # fmt: skip
    for line, new in pairs:
        db.insert("request_items", {"order_id": order["order_id"], "position": line["position"],
                                    "new_item_id": new["item_id"]})  # fmt: skip
    db.execute(
        "UPDATE orders SET status = 'exchange requested' WHERE order_id = ?", (order["order_id"],)
    )
    return _order_view(db, order["order_id"])


# ----- generic tools -------------------------------------------------------------------------
@tool
def calculate(db: Database, expression: str) -> str:
    """Calculate the result of an arithmetic expression, rounded to two decimals.

    Args:
        expression: The expression, such as '89.99 + 24.5 - 10'. Numbers, + - * / and
            parentheses.
    """
    return arithmetic(expression)


@tool
def transfer_to_human_agents(db: Database, summary: str) -> str:
    """Transfer the customer to a human agent with a summary of their issue. Only when the
    customer asks for a human, or the request cannot be handled with the tools and the policy.

    Args:
        summary: A summary of the customer's issue.
    """
    return "Transfer successful"
