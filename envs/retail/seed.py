"""Deterministic seed data for Larkspur Market: 50 product types with 6 to 14 variants each, 500
customers with their payment methods, and 1,000 orders in every status, with shipments and
tracking numbers for what has shipped, payment histories that add up, and the return and
exchange requests of the orders that have them. Same seed, same rows, on every machine.

`seed(conn, scale=N)` adds N - 1 more groups of 500 customers and 1,000 orders (same catalog)
beside the first, which stays the same row for row: the benchmark's larger databases, where the
tasks still replay.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
from datetime import datetime, timedelta

SEED = 20250318
NOW = datetime(2025, 3, 18, 11, 30, 0)
USERS = 500
ORDERS = 1000

# name, typical price in dollars, options (name, values) in display order
CATALOG: list[tuple[str, int, list[tuple[str, list[str]]]]] = [
    ("Trail Running Shoes", 95, [("size", ["7", "8", "9", "10", "11", "12"]),
                                 ("color", ["black", "navy", "red"])]),
    ("Hiking Boots", 150, [("size", ["7", "8", "9", "10", "11", "12"]),
                           ("material", ["leather", "synthetic"]),
                           ("waterproof", ["yes", "no"])]),
    ("T-Shirt", 22, [("size", ["S", "M", "L", "XL"]),
                     ("color", ["white", "black", "green", "blue"]),
                     ("fit", ["regular", "slim"])]),
    ("Hoodie", 48, [("size", ["S", "M", "L", "XL"]), ("color", ["grey", "black", "maroon"])]),
    ("Rain Jacket", 98, [("size", ["S", "M", "L", "XL"]), ("color", ["yellow", "olive", "black"])]),
    ("Wool Socks", 18, [("size", ["S", "M", "L"]), ("pack", ["3-pack", "6-pack"])]),
    ("Backpack", 72, [("capacity", ["20L", "30L", "40L"]), ("color", ["black", "teal", "orange"])]),
    ("Water Bottle", 26, [("capacity", ["500ml", "750ml", "1000ml"]),
                          ("material", ["stainless steel", "plastic", "glass"]),
                          ("color", ["white", "black", "blue"])]),
    ("Yoga Mat", 36, [("thickness", ["4mm", "6mm", "8mm"]),
                      ("material", ["TPE", "natural rubber", "PVC"]),
                      ("color", ["purple", "green", "grey"])]),
    ("Dumbbell Set", 160, [("weight range", ["5-25 lbs", "10-50 lbs", "20-80 lbs"]),
                           ("material", ["iron", "rubber-coated"])]),
    ("Espresso Machine", 260, [("pressure", ["9 bar", "15 bar", "19 bar"]),
                               ("capacity", ["1L", "1.5L", "2L"]),
                               ("type", ["manual", "automatic", "capsule"])]),
    ("Coffee Grinder", 48, [("grind type", ["blade", "burr"]),
                            ("capacity", ["8 cups", "12 cups"]),
                            ("color", ["black", "silver", "white"])]),
    ("Electric Kettle", 42, [("capacity", ["1L", "1.5L", "1.7L"]),
                             ("material", ["glass", "stainless steel", "plastic"]),
                             ("color", ["white", "black", "silver"])]),
    ("Blender", 92, [("capacity", ["48oz", "64oz"]), ("power", ["700W", "1000W", "1500W"]),
                     ("color", ["red", "black", "white"])]),
    ("Air Fryer", 115, [("capacity", ["3 qt", "5 qt", "8 qt"]),
                        ("color", ["black", "white", "sage"])]),
    ("Chef's Knife", 64, [("blade length", ["6 inch", "8 inch", "10 inch"]),
                          ("material", ["stainless steel", "carbon steel", "ceramic"])]),
    ("Cookware Set", 185, [("pieces", ["8-piece", "10-piece", "12-piece"]),
                           ("material", ["stainless steel", "nonstick", "cast iron"])]),
    ("Desk Lamp", 39, [("color", ["black", "white", "brass"]),
                       ("brightness", ["low", "medium", "high"]),
                       ("power source", ["USB", "AC adapter", "battery"])]),
    ("Office Chair", 230, [("material", ["mesh", "leather", "fabric"]),
                           ("color", ["black", "grey", "blue"]),
                           ("armrest", ["fixed", "adjustable", "none"])]),
    ("Standing Desk", 430, [("size", ["48 x 24 inch", "60 x 30 inch", "72 x 30 inch"]),
                            ("color", ["walnut", "white", "black"])]),
    ("Mechanical Keyboard", 115, [("switch type", ["linear", "tactile", "clicky"]),
                                  ("backlight", ["none", "white", "RGB"]),
                                  ("layout", ["full size", "tenkeyless", "75%"])]),
    ("Wireless Mouse", 34, [("color", ["black", "white", "pink"]),
                            ("connectivity", ["Bluetooth", "USB receiver"]),
                            ("grip", ["right-handed", "ambidextrous"])]),
    ("Monitor", 270, [("size", ["24 inch", "27 inch", "32 inch"]),
                      ("resolution", ["1080p", "1440p", "4K"]),
                      ("refresh rate", ["60Hz", "144Hz"])]),
    ("Laptop", 1150, [("screen size", ["13 inch", "15 inch"]), ("processor", ["i5", "i7", "i9"]),
                      ("storage", ["256GB SSD", "512GB SSD", "1TB SSD"]),
                      ("color", ["silver", "space grey"])]),
    ("Tablet", 430, [("screen size", ["8 inch", "10 inch", "12 inch"]),
                     ("storage", ["64GB", "128GB", "256GB"]),
                     ("color", ["silver", "black", "gold"])]),
    ("E-Reader", 135, [("screen size", ["6 inch", "7 inch"]),
                       ("connectivity", ["Wi-Fi", "Wi-Fi + Cellular"]),
                       ("storage", ["8GB", "32GB"])]),
    ("Smartwatch", 290, [("case size", ["40mm", "44mm"]),
                         ("band", ["silicone", "leather", "metal"]),
                         ("color", ["black", "silver", "rose gold"])]),
    ("Wireless Earbuds", 125, [("color", ["black", "white", "blue"]),
                               ("battery life", ["6 hours", "8 hours", "10 hours"]),
                               ("noise cancelling", ["yes", "no"])]),
    ("Over-Ear Headphones", 185, [("color", ["black", "silver", "navy"]),
                                  ("noise cancelling", ["yes", "no"]),
                                  ("connectivity", ["wired", "wireless"])]),
    ("Bluetooth Speaker", 78, [("color", ["black", "red", "blue", "green"]),
                               ("battery life", ["10 hours", "20 hours"]),
                               ("water resistance", ["yes", "no"])]),
    ("Action Camera", 310, [("resolution", ["1080p", "4K", "5K"]),
                            ("storage", ["32GB", "64GB", "128GB"]),
                            ("color", ["black", "silver"])]),
    ("Portable Charger", 42, [("capacity", ["10000mAh", "20000mAh", "30000mAh"]),
                              ("color", ["black", "white", "blue"])]),
    ("Sunglasses", 88, [("frame color", ["black", "tortoise", "gold"]),
                        ("lens color", ["grey", "green", "brown"]),
                        ("polarized", ["yes", "no"])]),
    ("Jigsaw Puzzle", 27, [("pieces", ["500", "1000", "1500", "2000"]),
                           ("theme", ["landscape", "animals", "art", "cityscape"]),
                           ("difficulty", ["beginner", "intermediate", "expert"])]),
    ("Tent", 240, [("capacity", ["2-person", "4-person", "6-person"]),
                   ("season", ["3-season", "4-season"]), ("color", ["green", "orange"])]),
    ("Sleeping Bag", 115, [("season", ["summer", "three-season", "winter"]),
                           ("size", ["regular", "long"]), ("color", ["blue", "red", "green"])]),
    ("Camping Stove", 66, [("fuel type", ["propane", "butane", "multi-fuel"]),
                           ("burners", ["1", "2"])]),
    ("Bicycle Helmet", 62, [("size", ["S", "M", "L"]), ("color", ["white", "black", "red", "blue"]),
                            ("ventilation", ["low", "high"])]),
    ("Bicycle Lock", 46, [("type", ["U-lock", "chain", "cable"]),
                          ("security level", ["medium", "high"])]),
    ("Skateboard", 92, [("deck size", ["7.75 inch", "8.0 inch", "8.25 inch"]),
                        ("design", ["plain", "graphic"]), ("wheel hardness", ["soft", "hard"])]),
    ("Garden Hose", 36, [("length", ["25 ft", "50 ft", "100 ft"]),
                         ("material", ["rubber", "vinyl", "latex"]),
                         ("color", ["green", "black", "blue"])]),
    ("Plant Pot", 25, [("size", ["small", "medium", "large"]),
                       ("material", ["ceramic", "terracotta", "plastic"]),
                       ("color", ["white", "terracotta", "charcoal"])]),
    ("Bed Sheet Set", 78, [("size", ["twin", "full", "queen", "king"]),
                           ("material", ["cotton", "linen", "bamboo"]),
                           ("color", ["white", "sand", "sage", "navy"])]),
    ("Throw Pillow", 31, [("size", ["16 inch", "18 inch", "20 inch"]),
                          ("color", ["mustard", "navy", "cream", "rust"]),
                          ("fill", ["polyester", "down"])]),
    ("Bath Towel Set", 46, [("pieces", ["2-piece", "4-piece", "6-piece"]),
                            ("color", ["white", "grey", "blue"]),
                            ("material", ["cotton", "bamboo"])]),
    ("Vacuum Cleaner", 215, [("type", ["upright", "canister", "stick"]),
                             ("bag type", ["bagged", "bagless"]),
                             ("feature", ["pet hair removal", "HEPA filter", "cordless"])]),
    ("Smart Thermostat", 165, [
        ("color", ["white", "black", "stainless"]),
        ("compatibility", ["Google Home", "Amazon Alexa", "Apple HomeKit"])]),
    ("Security Camera", 94, [("resolution", ["1080p", "2K", "4K"]),
                             ("field of view", ["110 degrees", "130 degrees", "160 degrees"]),
                             ("connectivity", ["Wi-Fi", "wired"])]),
    ("Luggage Set", 265, [("pieces", ["2-piece", "3-piece"]),
                          ("material", ["hardshell", "softshell"]),
                          ("color", ["black", "navy", "silver"])]),
    ("Fountain Pen", 56, [("nib size", ["fine", "medium", "broad"]),
                          ("color", ["black", "blue", "burgundy"]),
                          ("material", ["resin", "metal"])]),
]  # fmt: skip

FIRST_NAMES = [
    "Ava", "Liam", "Mia", "Noah", "Emma", "Omar", "Sofia", "Lucas", "Amara", "Ethan", "Chloe",
    "Mateo", "Priya", "Daniel", "Yuki", "Hannah", "Diego", "Leila", "Samuel", "Grace", "Ivan",
    "Nora", "Kofi", "Elena", "Jonah", "Aisha", "Felix", "Maya", "Tomas", "Zoe", "Arjun", "Lena",
    "Marcus", "Ines", "Caleb", "Hana", "Rafael", "Julia", "Kenji", "Olivia", "Ahmed", "Clara",
    "Mason", "Fatima", "Leo", "Rosa", "Victor", "Anya", "Isaac", "Layla", "Wei", "Sana", "Bruno",
    "Nadia", "Theo", "Imani",
]  # fmt: skip
LAST_NAMES = [
    "Smith", "Garcia", "Chen", "Patel", "Johnson", "Kim", "Nguyen", "Rossi", "Muller", "Silva",
    "Brown", "Cohen", "Ito", "Lopez", "Okafor", "Novak", "Walker", "Haddad", "Larsen", "Moreau",
    "Singh", "Davis", "Tanaka", "Ortiz", "Wright", "Kowalski", "Ahmed", "Fischer", "Reyes",
    "Murphy", "Costa", "Yamamoto", "Hughes", "Santos", "Bauer", "Ali", "Jensen", "Rivera", "Park",
    "Evans", "Lindqvist", "Osei", "Mendes", "Dubois", "Kaur", "Petrov", "Mwangi", "Sato",
]  # fmt: skip
STREETS = [
    "Oak Street", "Maple Avenue", "Cedar Lane", "Pine Road", "Elm Street", "Lakeview Drive",
    "Hillcrest Avenue", "River Road", "Park Place", "Sunset Boulevard", "Main Street",
    "Church Street", "Willow Way", "Birch Court", "Highland Avenue", "Meadow Lane",
    "Harbor Street", "Chestnut Street",
]  # fmt: skip
CITIES = [
    ("Austin", "TX", "787"), ("Portland", "OR", "972"), ("Columbus", "OH", "432"),
    ("Denver", "CO", "802"), ("Charlotte", "NC", "282"), ("Phoenix", "AZ", "850"),
    ("Boston", "MA", "021"), ("Seattle", "WA", "981"), ("Miami", "FL", "331"),
    ("Chicago", "IL", "606"), ("Minneapolis", "MN", "554"), ("Nashville", "TN", "372"),
    ("San Diego", "CA", "921"), ("Philadelphia", "PA", "191"), ("Madison", "WI", "537"),
    ("Salt Lake City", "UT", "841"), ("Atlanta", "GA", "303"), ("Pittsburgh", "PA", "152"),
]  # fmt: skip
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
BRANDS = ("visa", "mastercard", "amex", "discover")
CARRIERS = ("UPS", "FedEx", "USPS")
STATUS_WEIGHTS = {
    "pending": 14, "pending (item modified)": 3, "processed": 14, "delivered": 47,
    "cancelled": 10, "return requested": 6, "exchange requested": 6,
}  # fmt: skip
REASONS = ("no longer needed", "ordered by mistake")


class _Ids:
    """Fresh ids, unique across everything the seed makes."""

    def __init__(self) -> None:
        self.taken: set[str] = set()

    def make(self, rng: random.Random, prefix: str, digits: int) -> str:
        while True:
            candidate = prefix + str(rng.randint(10 ** (digits - 1), 10**digits - 1))
            if candidate not in self.taken:
                self.taken.add(candidate)
                return candidate


def seed(conn: sqlite3.Connection, scale: int = 1) -> None:
    """Fill an empty database created from schema.sql: the catalog, then `scale` groups of
    customers and orders (at most 100; see the module doc)."""
    if not 1 <= scale <= 100:
        raise ValueError("scale goes from 1 to 100 groups")
    ids = _Ids()
    variants = _catalog(conn, random.Random(SEED), ids)
    names: set[tuple[str, str, str]] = set()
    for group in range(scale):
        rng = random.Random(f"{SEED}:customers" if group == 0 else f"{SEED}:{group}")
        users, methods = _users(conn, rng, ids, names, group)
        _orders(conn, rng, ids, users, methods, variants)


def _price(rng: random.Random, base: int, indices: tuple[int, ...]) -> int:
    factor = 1.0
    for index in indices:
        factor *= 1 + 0.06 * index + rng.uniform(-0.03, 0.05)
    return max(500, round(base * 100 * factor * rng.uniform(0.92, 1.08)))


def _catalog(conn: sqlite3.Connection, rng: random.Random, ids: _Ids) -> dict[str, list[dict]]:
    """Products, their option names, and 6 to 14 variants each (unique option combinations,
    unique prices within a product, at least three available)."""
    variants: dict[str, list[dict]] = {}
    for name, base, options in CATALOG:
        product_id = ids.make(rng, "", 10)
        conn.execute("INSERT INTO products VALUES (?, ?)", (product_id, name))
        conn.executemany(
            "INSERT INTO product_options VALUES (?, ?, ?)",
            [(product_id, i, option) for i, (option, _) in enumerate(options)],
        )
        combos = list(itertools.product(*(range(len(values)) for _, values in options)))
        rng.shuffle(combos)
        chosen = sorted(combos[: rng.randint(6, 14)])
        rows, prices = [], set()
        for combo in chosen:
            price = _price(rng, base, combo)
            while price in prices:
                price += rng.randint(1, 99)
            prices.add(price)
            rows.append({
                "item_id": ids.make(rng, "", 10), "product_id": product_id, "name": name,
                "price": price, "available": int(rng.random() < 0.75),
                "values": [values[i] for (_, values), i in zip(options, combo, strict=True)],
            })  # fmt: skip
        for row in rng.sample(rows, 3):
            row["available"] = 1
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?)",
            [(r["item_id"], product_id, r["price"], r["available"]) for r in rows],
        )
        conn.executemany(
            "INSERT INTO item_options VALUES (?, ?, ?)",
            [(r["item_id"], i, value) for r in rows for i, value in enumerate(r["values"])],
        )
        variants[product_id] = rows
    return variants


def _users(conn, rng, ids, names, group) -> tuple[list[dict], dict[str, list[dict]]]:  # noqa: PLR0913
    users: list[dict] = []
    methods: dict[str, list[dict]] = {}
    while len(users) < USERS:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, state, prefix = rng.choice(CITIES)
        zip_code = f"{prefix}{rng.randint(1, 99):02d}"
        number = rng.randint(100, 9999)
        user_id = f"{first.lower()}_{last.lower()}_{number}"
        if (first, last, zip_code) in names or user_id in ids.taken:
            continue
        names.add((first, last, zip_code))
        ids.taken.add(user_id)
        second_line = rng.choice(
            (
                "",
                "",
                "",
                f"Apt {rng.randint(1, 30)}{rng.choice('ABCD')}",
                f"Unit {rng.randint(100, 999)}",
                f"Suite {rng.randint(2, 9)}00",
            )
        )
        user = {
            "user_id": user_id, "first_name": first, "last_name": last,
            "email": f"{first.lower()}.{last.lower()}{number}@{rng.choice(EMAIL_DOMAINS)}",
            "address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
            "address2": second_line, "city": city, "state": state, "country": "USA",
            "zip": zip_code,
        }  # fmt: skip
        users.append(user)
        own = []
        for _ in range(rng.choice((0, 1, 1, 1, 2))):
            own.append({"payment_method_id": ids.make(rng, "credit_card_", 7), "source":
                        "credit_card", "brand": rng.choice(BRANDS),
                        "last_four": f"{rng.randint(0, 9999):04d}", "balance": None})  # fmt: skip
        if not own or rng.random() < 0.35:
            own.append({"payment_method_id": ids.make(rng, "paypal_", 7), "source": "paypal",
                        "brand": None, "last_four": None, "balance": None})  # fmt: skip
        gift_cards = 0 if rng.random() < 0.55 else 1 if rng.random() < 0.8 else 2
        for _ in range(gift_cards):
            balance = rng.choice((rng.randint(0, 300) * 100, rng.randint(0, 30000)))
            own.append({"payment_method_id": ids.make(rng, "gift_card_", 7),
                        "source": "gift_card", "brand": None, "last_four": None,
                        "balance": balance})  # fmt: skip
        methods[user_id] = own
    conn.executemany(
        "INSERT INTO users VALUES (:user_id, :first_name, :last_name, :email, :address1, "
        ":address2, :city, :state, :country, :zip)",
        users,
    )
    conn.executemany(
        "INSERT INTO payment_methods VALUES (:payment_method_id, :user_id, :source, :brand, "
        ":last_four, :balance)",
        [{**m, "user_id": user_id} for user_id, own in methods.items() for m in own],
    )
    return users, methods


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _tracking(rng: random.Random, ids: _Ids, carrier: str) -> str:
    if carrier == "UPS":
        while True:
            code = "1Z" + "".join(rng.choices("0123456789ABCDEFGHJKLMNPRSTUVWXY", k=16))
            if code not in ids.taken:
                ids.taken.add(code)
                return code
    return ids.make(rng, "", 12 if carrier == "FedEx" else 22)


def _orders(conn, rng, ids, users, methods, variants) -> None:  # noqa: PLR0913, PLR0915
    products = sorted(variants)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    balances = {m["payment_method_id"]: m for own in methods.values() for m in own}
    orders, lines, parcels, payments, requests, request_lines = [], [], [], [], [], []
    for _ in range(ORDERS):
        user = rng.choice(users)
        status = rng.choices(statuses, weights)[0]
        if status.startswith("pending"):
            created = NOW - timedelta(minutes=rng.randint(30, 3 * 24 * 60))
        elif status == "processed":
            created = NOW - timedelta(minutes=rng.randint(2 * 24 * 60, 7 * 24 * 60))
        elif status == "cancelled":
            created = NOW - timedelta(minutes=rng.randint(60, 120 * 24 * 60))
        elif status == "delivered":
            created = NOW - timedelta(minutes=rng.randint(9 * 24 * 60, 120 * 24 * 60))
        else:  # a return or exchange asked for within a month of delivery
            created = NOW - timedelta(minutes=rng.randint(9 * 24 * 60, 40 * 24 * 60))
        order_id = ids.make(rng, "#R", 7)
        moved = rng.random() < 0.1
        address = {k: user[k] for k in ("address1", "address2", "city", "state", "country", "zip")}
        if moved:  # sent somewhere else: a gift, an office
            city, state, prefix = rng.choice(CITIES)
            address = {"address1": f"{rng.randint(10, 9999)} {rng.choice(STREETS)}",
                       "address2": "", "city": city, "state": state, "country": "USA",
                       "zip": f"{prefix}{rng.randint(1, 99):02d}"}  # fmt: skip
        picked = []
        for product_id in rng.sample(
            products, rng.choices((1, 2, 3, 4, 5), (35, 30, 20, 10, 5))[0]
        ):
            picked.append(rng.choice(variants[product_id]))
        if rng.random() < 0.05:
            picked.append(picked[0])  # two of the same item
        items = [{"item_id": v["item_id"], "price": v["price"], "product_id": v["product_id"]}
                 for v in picked]  # fmt: skip
        total = sum(item["price"] for item in items)
        own = methods[user["user_id"]]
        gift = [m for m in own if m["source"] == "gift_card" and m["balance"] >= total]
        if gift and rng.random() < 0.4:
            method = gift[0]
            method["balance"] -= total
        else:
            method = rng.choice([m for m in own if m["source"] != "gift_card"])
        pays = [(order_id, method["payment_method_id"], "payment", total)]
        cancel_reason = None
        if status == "cancelled":
            cancel_reason = rng.choice(REASONS)
            pays.append((order_id, method["payment_method_id"], "refund", total))
            if method["source"] == "gift_card":
                method["balance"] += total
        if status == "pending (item modified)":
            swappable = [i for i, it in enumerate(items)
                         if len(variants[it["product_id"]]) > 1]  # fmt: skip
            index = rng.choice(swappable)
            old = items[index]
            choices = [v for v in variants[old["product_id"]]
                       if v["available"] and v["item_id"] != old["item_id"]]  # fmt: skip
            new = rng.choice(choices)
            difference = new["price"] - old["price"]
            items[index] = {**old, "item_id": new["item_id"], "price": new["price"]}
            if difference and (method["source"] != "gift_card" or method["balance"] >= difference):
                kind = "payment" if difference > 0 else "refund"
                pays.append((order_id, method["payment_method_id"], kind, abs(difference)))
                if method["source"] == "gift_card":
                    method["balance"] -= difference
            elif difference:
                items[index] = old
                status = "pending"
        orders.append((order_id, user["user_id"], _stamp(created), status, *address.values(),
                       cancel_reason))  # fmt: skip
        tracking = [None] * len(items)
        if status in ("processed", "delivered", "return requested", "exchange requested"):
            split = len(items) >= 2 and rng.random() < 0.3
            groups = [list(range(len(items)))]
            if split:
                cut = rng.randint(1, len(items) - 1)
                groups = [list(range(cut)), list(range(cut, len(items)))]
            for number, group in enumerate(groups):
                carrier = rng.choice(CARRIERS)
                code = _tracking(rng, ids, carrier)
                shipped = created + timedelta(hours=rng.randint(12, 40) + 24 * number)
                delivered = None
                if status != "processed":
                    delivered = _stamp(shipped + timedelta(hours=rng.randint(40, 120)))
                elif number == 0 and split and rng.random() < 0.5:
                    delivered = _stamp(min(NOW, shipped + timedelta(hours=rng.randint(30, 60))))
                parcels.append((code, order_id, carrier, _stamp(shipped), delivered))
                for index in group:
                    tracking[index] = code
        for position, (item, code) in enumerate(zip(items, tracking, strict=True)):
            lines.append((order_id, position, item["item_id"], item["price"], code))
        payments.extend(pays)
        if status in ("return requested", "exchange requested"):
            delivered_at = max(p[4] for p in parcels if p[1] == order_id)
            asked = datetime.fromisoformat(delivered_at) + timedelta(hours=rng.randint(6, 96))
            positions = sorted(rng.sample(range(len(items)), rng.randint(1, len(items))))
            gift_cards = [m for m in own if m["source"] == "gift_card"]
            if status == "return requested":
                refund_to = rng.choice([method, *gift_cards])
                amount = sum(items[p]["price"] for p in positions)
                requests.append((order_id, "return", refund_to["payment_method_id"], amount,
                                 _stamp(min(asked, NOW))))  # fmt: skip
                request_lines.extend((order_id, p, None) for p in positions)
            else:
                swaps = []
                for p in positions:
                    others = [
                        v for v in variants[items[p]["product_id"]]
                        if v["available"] and v["item_id"] != items[p]["item_id"]
                    ]  # fmt: skip
                    if others:
                        swaps.append((p, rng.choice(others)))
                difference = sum(v["price"] - items[p]["price"] for p, v in swaps)
                payer = (
                    method
                    if method["source"] != "gift_card"
                    else rng.choice([m for m in own if m["source"] != "gift_card"] or [method])
                )
                if not swaps or (payer["source"] == "gift_card" and payer["balance"] < difference):
                    orders[-1] = (*orders[-1][:3], "delivered", *orders[-1][4:])
                    continue
                requests.append((order_id, "exchange", payer["payment_method_id"], difference,
                                 _stamp(min(asked, NOW))))  # fmt: skip
                request_lines.extend((order_id, p, v["item_id"]) for p, v in swaps)
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", orders)
    conn.executemany("INSERT INTO fulfillments VALUES (?, ?, ?, ?, ?)", parcels)
    conn.executemany("INSERT INTO order_items VALUES (?, ?, ?, ?, ?)", lines)
    conn.executemany(
        "INSERT INTO payments (order_id, payment_method_id, transaction_type, amount) "
        "VALUES (?, ?, ?, ?)",
        payments,
    )
    conn.executemany("INSERT INTO order_requests VALUES (?, ?, ?, ?, ?)", requests)
    conn.executemany("INSERT INTO request_items VALUES (?, ?, ?)", request_lines)
    conn.executemany(
        "UPDATE payment_methods SET balance = ? WHERE payment_method_id = ?",
        [(m["balance"], m["payment_method_id"]) for m in balances.values()
         if m["source"] == "gift_card"],
    )  # fmt: skip
