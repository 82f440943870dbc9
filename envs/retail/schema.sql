-- Larkspur Market: customers, their payment methods, a catalog of products whose variants
-- (items) differ by options, and orders with their items, shipments, payments and return or
-- exchange requests. Money is in US cents (integers); the tools show dollars.

CREATE TABLE users (
    user_id TEXT PRIMARY KEY,
    first_name TEXT NOT NULL COLLATE NOCASE CHECK (length(first_name) > 0),
    last_name TEXT NOT NULL COLLATE NOCASE CHECK (length(last_name) > 0),
    email TEXT NOT NULL COLLATE NOCASE UNIQUE CHECK (email LIKE '%_@_%._%'),
    address1 TEXT NOT NULL CHECK (length(address1) > 0),
    address2 TEXT NOT NULL DEFAULT '',
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    country TEXT NOT NULL,
    zip TEXT NOT NULL CHECK (length(zip) > 0)
) WITHOUT ROWID;
CREATE UNIQUE INDEX users_by_name_zip ON users (zip, last_name, first_name);  -- the identity check

CREATE TABLE payment_methods (
    payment_method_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (user_id),
    source TEXT NOT NULL CHECK (source IN ('credit_card', 'paypal', 'gift_card')),
    brand TEXT,
    last_four TEXT CHECK (last_four IS NULL OR (length(last_four) = 4 AND last_four NOT GLOB '*[^0-9]*')),
    balance INTEGER CHECK (balance IS NULL OR balance >= 0),  -- cents, gift cards only
    CHECK ((source = 'gift_card') = (balance IS NOT NULL)),
    CHECK ((source = 'credit_card') = (brand IS NOT NULL AND last_four IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX payment_methods_by_user ON payment_methods (user_id, payment_method_id);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) WITHOUT ROWID;

-- The option names a product's variants differ by, in display order ('size', 'color').
CREATE TABLE product_options (
    product_id TEXT NOT NULL REFERENCES products (product_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    name TEXT NOT NULL,
    PRIMARY KEY (product_id, position),
    UNIQUE (product_id, name)
) WITHOUT ROWID;

-- A variant of a product: one value per option, a price and whether it can be ordered now.
CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    product_id TEXT NOT NULL REFERENCES products (product_id),
    price INTEGER NOT NULL CHECK (price > 0),
    available INTEGER NOT NULL CHECK (available IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX items_by_product ON items (product_id, item_id);

CREATE TABLE item_options (
    item_id TEXT NOT NULL REFERENCES items (item_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    value TEXT NOT NULL CHECK (length(value) > 0),
    PRIMARY KEY (item_id, position)
) WITHOUT ROWID;

CREATE TABLE orders (
    order_id TEXT PRIMARY KEY CHECK (order_id GLOB '#R[0-9][0-9][0-9][0-9][0-9][0-9][0-9]'),
    user_id TEXT NOT NULL REFERENCES users (user_id),
    created_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'pending (item modified)', 'processed',
        'delivered', 'cancelled', 'return requested', 'exchange requested')),
    address1 TEXT NOT NULL CHECK (length(address1) > 0),
    address2 TEXT NOT NULL DEFAULT '',
    city TEXT NOT NULL,
    state TEXT NOT NULL,
    country TEXT NOT NULL,
    zip TEXT NOT NULL CHECK (length(zip) > 0),
    cancel_reason TEXT CHECK (cancel_reason IN ('no longer needed', 'ordered by mistake')),
    CHECK ((status = 'cancelled') = (cancel_reason IS NOT NULL))
) WITHOUT ROWID;
CREATE INDEX orders_by_user ON orders (user_id, created_at);

-- A parcel: the items of an order shipped together under one tracking number.
CREATE TABLE fulfillments (
    tracking_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    carrier TEXT NOT NULL CHECK (carrier IN ('UPS', 'FedEx', 'USPS')),
    shipped_at TEXT NOT NULL,
    delivered_at TEXT CHECK (delivered_at IS NULL OR delivered_at >= shipped_at)
) WITHOUT ROWID;
CREATE INDEX fulfillments_by_order ON fulfillments (order_id, shipped_at);

-- One line per unit ordered (the same item twice is two lines), at the price paid.
CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    position INTEGER NOT NULL CHECK (position >= 0),
    item_id TEXT NOT NULL REFERENCES items (item_id),
    price INTEGER NOT NULL CHECK (price > 0),
    tracking_id TEXT REFERENCES fulfillments (tracking_id),
    PRIMARY KEY (order_id, position)
) WITHOUT ROWID;

CREATE TABLE payments (
    payment_seq INTEGER PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    payment_method_id TEXT NOT NULL REFERENCES payment_methods (payment_method_id),
    transaction_type TEXT NOT NULL CHECK (transaction_type IN ('payment', 'refund')),
    amount INTEGER NOT NULL CHECK (amount > 0)
);
CREATE INDEX payments_by_order ON payments (order_id, payment_seq);

-- A return or exchange asked for on a delivered order (at most one per order). For a return,
-- amount is the refund; for an exchange, the price difference (negative: owed to the customer).
CREATE TABLE order_requests (
    order_id TEXT PRIMARY KEY REFERENCES orders (order_id),
    kind TEXT NOT NULL CHECK (kind IN ('return', 'exchange')),
    payment_method_id TEXT NOT NULL REFERENCES payment_methods (payment_method_id),
    amount INTEGER NOT NULL,
    requested_at TEXT NOT NULL,
    CHECK (kind = 'exchange' OR amount > 0)
) WITHOUT ROWID;

-- The order lines a request covers; an exchange names the item each one is swapped for.
CREATE TABLE request_items (
    order_id TEXT NOT NULL REFERENCES order_requests (order_id),
    position INTEGER NOT NULL,
    new_item_id TEXT REFERENCES items (item_id),
    PRIMARY KEY (order_id, position),
    FOREIGN KEY (order_id, position) REFERENCES order_items (order_id, position)
) WITHOUT ROWID;
