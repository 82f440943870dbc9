"""Make Workspace-v0's three services describe one company (the `link` contract is in
`envfactory_gym.composite`).

Every sales rep in the CRM and every mailbox belongs to an employee of the company calendar (same
name, same address); the outside guests of a rep's meetings are contacts of the rep's CRM
accounts; and some of the outside mail in a rep's mailbox comes from those contacts.
"""

from __future__ import annotations

import json
import sqlite3

INTERNAL = "@brightlane.com"
CLIENT_TITLES = [
    "Client call",
    "Product demo",
    "Customer onboarding",
    "Pricing discussion",
    "Contract review",
    "Renewal check-in",
]
CUSTOMER_SUBJECTS = [
    "Pricing proposal questions",
    "Legal review of the NDA",
    "Notes from our call",
    "Data retention questions",
    "Question about our invoice",
    "Seat count for next quarter",
    "Security questionnaire",
    "Follow-up from the demo",
    "Renewal terms",
    "Onboarding timeline",
    "Support ticket escalation",
    "Integration with our CRM",
]


def link(databases: dict[str, sqlite3.Connection]) -> None:
    calendar, crm, mail = databases["calendar"], databases["crm"], databases["mail"]
    people = calendar.execute("SELECT name, email FROM users ORDER BY user_id").fetchall()
    _adopt(crm, "reps", "rep_id", people)
    renamed = _adopt(mail, "accounts", "account_id", people)
    for column in ("sender",):
        _replace_addresses(mail, "messages", "message_id", column, renamed)
    for column in ("forward_to", "from_address"):
        _replace_addresses(mail, "forwarding_rules", "rule_id", column, renamed)
    _replace_addresses(mail, "drafts", "draft_id", "to_address", renamed)
    for rep_id, email in crm.execute("SELECT rep_id, email FROM reps ORDER BY rep_id").fetchall():
        accounts = [
            [
                row[0]
                for row in crm.execute(
                    "SELECT email FROM contacts WHERE account_id = ? ORDER BY contact_id",
                    (account,),
                )
            ]
            for (account,) in crm.execute(
                "SELECT account_id FROM accounts WHERE owner_rep_id = ? ORDER BY account_id",
                (rep_id,),
            )
        ]
        accounts = [contacts for contacts in accounts if contacts]
        if accounts:
            _invite_contacts(calendar, email, accounts)
            _mail_from_contacts(mail, email, [c for contacts in accounts for c in contacts])


def _adopt(conn: sqlite3.Connection, table: str, key: str, people: list) -> dict[str, str]:
    """Give the table's people, in key order, the names and addresses of `people`; return
    old address -> new address."""
    rows = conn.execute(f"SELECT {key}, email FROM {table} ORDER BY {key}").fetchall()
    rows = rows[: len(people)]
    for row_key, _ in rows:  # first out of the way: the new addresses may be taken by old rows
        conn.execute(f"UPDATE {table} SET email = '~' || {key} WHERE {key} = ?", (row_key,))
    renamed = {}
    for (row_key, old), (name, email) in zip(rows, people, strict=False):
        conn.execute(
            f"UPDATE {table} SET name = ?, email = ? WHERE {key} = ?", (name, email, row_key)
        )
        renamed[old] = email
    return renamed


def _replace_addresses(
    conn: sqlite3.Connection, table: str, key: str, column: str, renamed: dict[str, str]
) -> None:
    rows = conn.execute(f"SELECT {key}, {column} FROM {table} ORDER BY {key}").fetchall()
    for row_key, address in rows:
        if address in renamed and renamed[address] != address:
            conn.execute(
                f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (renamed[address], row_key)
            )


def _invite_contacts(calendar: sqlite3.Connection, email: str, accounts: list[list[str]]) -> None:
    """A rep's work meetings with outside guests are meetings with a customer: each takes one of
    the rep's CRM accounts (in turn), a customer-facing title, and that account's contacts as its
    outside guests (outside guests beyond the account's contacts are dropped)."""
    events = calendar.execute(
        "SELECT e.event_id, e.title FROM events e JOIN calendars c USING (calendar_id) "
        "JOIN attendees me ON me.event_id = e.event_id AND me.email = ? AND me.organizer = 1 "
        "WHERE c.name = 'Work' AND EXISTS (SELECT 1 FROM attendees g WHERE g.event_id = "
        "e.event_id AND g.email NOT LIKE ?) ORDER BY e.event_id",
        (email, "%" + INTERNAL),
    ).fetchall()
    for index, (event_id, title) in enumerate(events):
        contacts = accounts[index % len(accounts)]
        if title not in CLIENT_TITLES:
            number = int(event_id[3:])
            calendar.execute(
                "UPDATE events SET title = ? WHERE event_id = ?",
                (CLIENT_TITLES[number % len(CLIENT_TITLES)], event_id),
            )
        outside = calendar.execute(
            "SELECT attendee_id FROM attendees WHERE event_id = ? AND email NOT LIKE ? "
            "ORDER BY attendee_id",
            (event_id, "%" + INTERNAL),
        ).fetchall()
        for position, (attendee_id,) in enumerate(outside):
            if position < len(contacts):
                calendar.execute(
                    "UPDATE attendees SET email = ? WHERE attendee_id = ?",
                    (contacts[position], attendee_id),
                )
            else:
                calendar.execute("DELETE FROM attendees WHERE attendee_id = ?", (attendee_id,))


def _mail_from_contacts(mail: sqlite3.Connection, email: str, contacts: list[str]) -> None:
    """Every other outside message in the rep's mailbox comes from one of their contacts, about
    something a customer writes about."""
    account_id, taken = mail.execute(
        "SELECT account_id, (SELECT json_group_array(subject) FROM messages m "
        "WHERE m.account_id = a.account_id) FROM accounts a WHERE email = ?",
        (email,),
    ).fetchone()
    free = [s for s in CUSTOMER_SUBJECTS if s not in json.loads(taken)]
    messages = mail.execute(
        "SELECT message_id FROM messages WHERE account_id = ? AND sender NOT LIKE ? "
        "ORDER BY message_id",
        (account_id, "%" + INTERNAL),
    ).fetchall()
    for index, (message_id,) in enumerate(messages[::2][: len(free)]):
        mail.execute(
            "UPDATE messages SET sender = ?, subject = ? WHERE message_id = ?",
            (contacts[index % len(contacts)], free[index], message_id),
        )
