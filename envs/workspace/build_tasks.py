"""Build envs/workspace/tasks.jsonl: requests that span the calendar, the CRM and mail.

Run `python -m envfactory_gym.envs.workspace.build_tasks`.

Each task kind picks real rows of the linked start state that fit it (a fixed random seed), writes
the employee's request in their own words (intent, not steps: no tool names, no ids), then runs
the ground-truth calls on the composite database to fill in the ids that only exist once an
earlier call ran, and replays them to record the expected diff, the allowed writes and the facts
the answer must state. Every kind needs at least two of the three services.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from envfactory_gym.package import load_package
from envfactory_gym.replay import task_from_calls
from envfactory_gym.tasks import Task, ToolCall, write_tasks
from envfactory_gym.tools import ToolError

NOW = "2025-09-16T10:00:00"
CLIENT_TITLES = {
    "Client call",
    "Product demo",
    "Customer onboarding",
    "Pricing discussion",
    "Contract review",
    "Renewal check-in",
}
INTERNAL = "@brightlane.com"
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]

Step = ToolCall | Callable[[list[Any]], ToolCall]
"""A ground-truth call, or one built from the results of the calls before it (a new event's id)."""
Outputs = Callable[[list[Any]], list[str]]
Draft = tuple[str, list[Step], Outputs, dict[str, str]]


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(name=name, arguments=arguments)


def spoken_date(iso: str) -> str:
    return f"{MONTHS[int(iso[5:7]) - 1]} {int(iso[8:10])}"


def spoken_time(iso: str) -> str:
    hour, minute = int(iso[11:13]), iso[14:16]
    suffix = "AM" if hour < 12 else "PM"
    return f"{(hour - 1) % 12 + 1}{':' + minute if minute != '00' else ''} {suffix}"


def no_outputs(results: list[Any]) -> list[str]:
    return []


GREETINGS = [
    "Hi, this is {name} ({email}).",
    "Hello, {name} here, {email}.",
    "Hi! I'm {name}; my address is {email}.",
    "Good morning, it's {name} ({email}).",
]


class World:
    """Read-only questions about the linked start state that the task kinds need."""

    def __init__(self, templates: dict[str, sqlite3.Connection]) -> None:
        self.calendar, self.crm, self.mail = (templates[n] for n in ("calendar", "crm", "mail"))
        for conn in templates.values():
            conn.row_factory = sqlite3.Row

    def greet(self, person: dict, rng: random.Random) -> str:
        return rng.choice(GREETINGS).format(name=person["name"], email=person["email"])

    def employees(self) -> list[dict]:
        """People with both a calendar and a mailbox: user id, account id, name, email."""
        mailboxes = {
            r["email"]: r["account_id"]
            for r in self.mail.execute("SELECT email, account_id FROM accounts")
        }
        return [
            {**dict(row), "account_id": mailboxes[row["email"]]}
            for row in self.calendar.execute("SELECT * FROM users ORDER BY user_id")
            if row["email"] in mailboxes
        ]

    def reps(self) -> list[dict]:
        """Employees who are sales reps in the CRM, with their rep id."""
        reps = {r["email"]: r["rep_id"] for r in self.crm.execute("SELECT * FROM reps")}
        return [{**p, "rep_id": reps[p["email"]]} for p in self.employees() if p["email"] in reps]

    def events(self, user_id: str) -> list[dict]:
        """The user's events on calendars they own or may write to, with the calendar's name and
        whether the user organizes the event (None when not on its guest list)."""
        return [
            dict(r)
            for r in self.calendar.execute(
                "SELECT e.*, c.name AS calendar_name, c.access_role, "
                "(SELECT a.organizer FROM attendees a JOIN users u ON u.email = a.email "
                " WHERE a.event_id = e.event_id AND u.user_id = c.user_id) AS organizer, "
                "strftime('%Y-%m-%dT%H:%M:%S', e.start_time, '+' || e.duration_minutes || "
                "' minutes') AS end_time "
                "FROM events e JOIN calendars c USING (calendar_id) WHERE c.user_id = ? "
                "ORDER BY e.start_time, e.event_id",
                (user_id,),
            )
        ]

    def unique_events(self, user_id: str) -> list[dict]:
        """The user's events that their title and date name unambiguously."""
        events = self.events(user_id)
        seen: dict[tuple[str, str], int] = {}
        for e in events:
            seen[(e["title"], e["start_time"][:10])] = (
                seen.get((e["title"], e["start_time"][:10]), 0) + 1
            )
        return [e for e in events if seen[(e["title"], e["start_time"][:10])] == 1]

    def guests(self, event_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self.calendar.execute(
                "SELECT * FROM attendees WHERE event_id = ? ORDER BY attendee_id", (event_id,)
            )
        ]

    def accounts(self, rep_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self.crm.execute(
                "SELECT * FROM accounts WHERE owner_rep_id = ? ORDER BY name", (rep_id,)
            )
        ]

    def contact(self, email: str) -> dict | None:
        found = self.crm.execute(
            "SELECT c.*, a.name AS account_name, a.owner_rep_id FROM contacts c "
            "JOIN accounts a USING (account_id) WHERE c.email = ?",
            (email,),
        ).fetchone()
        return dict(found) if found else None

    def contacts(self, account_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self.crm.execute(
                "SELECT * FROM contacts WHERE account_id = ? ORDER BY contact_id", (account_id,)
            )
        ]

    def deals(self, rep_id: str, account_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM deals WHERE rep_id = ?" + (" AND account_id = ?" if account_id else "")
        params = (rep_id, account_id) if account_id else (rep_id,)
        return [dict(r) for r in self.crm.execute(sql + " ORDER BY deal_id", params)]

    def messages(self, account_id: str) -> list[dict]:
        return [
            dict(r)
            for r in self.mail.execute(
                "SELECT * FROM messages WHERE account_id = ? AND folder IN ('inbox', 'archive') "
                "ORDER BY message_id",
                (account_id,),
            )
        ]

    def draft_subject_free(self, account_id: str, subject: str) -> bool:
        return (
            self.mail.execute(
                "SELECT 1 FROM drafts WHERE account_id = ? AND subject = ?", (account_id, subject)
            ).fetchone()
            is None
        )


def find_event(person: dict, event: dict) -> list[Step]:
    """The calendar calls that find one of the person's events by its calendar and day."""
    day = event["start_time"][:10]
    return [
        call("find_user", email=person["email"]),
        call("list_calendars", user_id=person["user_id"]),
        call(
            "list_events",
            calendar_id=event["calendar_id"],
            start_after=f"{day}T00:00:00",
            start_before=f"{day}T23:59:59",
        ),
        call("list_guests", event_id=event["event_id"]),
    ]


def find_account(world: World, rep: dict, account: dict) -> list[Step]:
    """The CRM calls that find one of the rep's accounts with its contacts."""
    return [
        call("find_rep", email=rep["email"]),
        call("list_accounts", owner_rep_id=rep["rep_id"]),
        call("get_account", account_id=account["account_id"]),
    ]


def event_phrase(event: dict) -> str:
    day = spoken_date(event["start_time"])
    return f"the {event['title']} on {day} (my {event['calendar_name']} calendar)"


def customer_guests(world: World, rep: dict, event: dict) -> list[dict]:
    """The CRM contacts of the rep's accounts on the event's guest list."""
    found = [world.contact(g["email"]) for g in world.guests(event["event_id"])]
    return [c for c in found if c and c["owner_rep_id"] == rep["rep_id"]]


def open_deals(world: World, rep: dict, account_id: str) -> list[dict]:
    return [
        d
        for d in world.deals(rep["rep_id"], account_id)
        if d["stage"] not in ("closed_won", "closed_lost")
    ]


# ----- calendar + mail ---------------------------------------------------------------------------
DECLINE_NOTES = [
    "Sorry, I have a conflict and can't join this one. Please send me the notes afterwards.",
    "I won't be able to attend; I'm out of the office that day. Happy to catch up after.",
    "Apologies, something urgent came up and I can't make it. Could we sync separately?",
    "I have to skip this one because of a customer visit. Thanks for understanding.",
]


def decline_and_tell_organizer(world: World, rng: random.Random) -> Iterator[Draft]:
    for person in world.employees():
        for event in world.unique_events(person["user_id"]):
            if (
                event["organizer"] != 0
                or event["status"] == "cancelled"
                or event["end_time"] <= NOW
                or event["access_role"] == "reader"
            ):
                continue
            guests = world.guests(event["event_id"])
            me = next(g for g in guests if g["email"] == person["email"])
            organizer = next((g for g in guests if g["organizer"] == 1), None)
            if me["response_status"] == "declined" or organizer is None:
                continue
            subject = f"Can't make {event['title']} on {spoken_date(event['start_time'])}"
            if not world.draft_subject_free(person["account_id"], subject):
                continue
            note = rng.choice(DECLINE_NOTES)
            yield (
                f"{world.greet(person, rng)} I can't make {event_phrase(event)}. Please decline "
                f"it for me, and leave a draft in my mailbox to the organizer with the subject "
                f'"{subject}" and this text: "{note}"',
                [
                    *find_event(person, event),
                    call(
                        "respond_to_invitation",
                        attendee_id=me["attendee_id"],
                        response_status="declined",
                    ),
                    call("find_account", email=person["email"]),
                    call(
                        "create_draft",
                        account_id=person["account_id"],
                        to_address=organizer["email"],
                        subject=subject,
                        body=note,
                    ),
                ],
                no_outputs,
                {"name": person["name"], "email": person["email"]},
            )


def invite_sender(world: World, rng: random.Random) -> Iterator[Draft]:
    """Invite the sender of an email to a meeting the user organizes."""
    for person in world.employees():
        events = [
            e
            for e in world.unique_events(person["user_id"])
            if e["organizer"] == 1
            and e["status"] != "cancelled"
            and e["start_time"] > NOW
            and e["calendar_name"] == "Work"
        ]
        messages = [
            m
            for m in world.messages(person["account_id"])
            if m["sender"] != person["email"]
            and "noreply" not in m["sender"]
            and "no-reply" not in m["sender"]
        ]
        if not events or not messages:
            continue
        event, message = rng.choice(events), rng.choice(messages)
        guests = world.guests(event["event_id"])
        if len(guests) >= 8 or message["sender"] in {g["email"] for g in guests}:
            continue
        day = message["received_at"][:10]
        yield (
            f'{world.greet(person, rng)} Whoever sent me the "{message["subject"]}" email on '
            f"{spoken_date(day)} should join {event_phrase(event)}. Please add them to it.",
            [
                call("find_account", email=person["email"]),
                call("list_messages", account_id=person["account_id"], query=message["subject"]),
                *find_event(person, event),
                call("add_guest", event_id=event["event_id"], email=message["sender"]),
            ],
            no_outputs,
            {"name": person["name"], "email": person["email"]},
        )


def invite_sender_refused(world: World, rng: random.Random) -> Iterator[Draft]:
    """The same request for a meeting that has already ended, or whose guest list is full."""
    for person in world.employees():
        events = [
            e
            for e in world.unique_events(person["user_id"])
            if e["organizer"] == 1 and e["status"] != "cancelled" and e["calendar_name"] == "Work"
        ]
        messages = [
            m
            for m in world.messages(person["account_id"])
            if m["sender"] != person["email"]
            and "noreply" not in m["sender"]
            and "no-reply" not in m["sender"]
        ]
        ended = [e for e in events if e["end_time"] <= NOW and len(world.guests(e["event_id"])) < 8]
        full = [e for e in events if e["end_time"] > NOW and len(world.guests(e["event_id"])) >= 8]
        candidates = ended[-3:] + full
        if not candidates or not messages:
            continue
        event, message = rng.choice(candidates), rng.choice(messages)
        if message["sender"] in {g["email"] for g in world.guests(event["event_id"])}:
            continue
        yield (
            f"{world.greet(person, rng)} Please add the person who emailed me about "
            f'"{message["subject"]}" to {event_phrase(event)}.',
            [
                call("find_account", email=person["email"]),
                call("list_messages", account_id=person["account_id"], query=message["subject"]),
                *find_event(person, event),
            ],
            no_outputs,
            {"name": person["name"], "email": person["email"]},
        )


# ----- CRM + calendar ----------------------------------------------------------------------------
MEETING_TITLES = [
    "Pricing walkthrough",
    "Renewal check-in",
    "Implementation kickoff",
    "Quarterly business review",
    "Security questionnaire review",
    "Contract review",
    "Product roadmap briefing",
    "Onboarding plan review",
]
LOCATIONS = ["Zoom", "Google Meet", "Conference Room A", "Conference Room B", "Client office"]


def meeting_with_contact(world: World, rng: random.Random) -> Iterator[Draft]:
    """Book a meeting with one of the rep's contacts, invite them, and log it on the deal."""
    for rep in world.reps():
        work = world.calendar.execute(
            "SELECT calendar_id FROM calendars WHERE user_id = ? AND name = 'Work' "
            "AND access_role = 'owner'",
            (rep["user_id"],),
        ).fetchone()
        if work is None:
            continue
        for account in world.accounts(rep["rep_id"]):
            deals, contacts = (
                open_deals(world, rep, account["account_id"]),
                world.contacts(account["account_id"]),
            )
            if len(deals) != 1 or not contacts:
                continue
            deal, contact = deals[0], rng.choice(contacts)
            day = f"2025-09-{rng.randint(17, 30):02d}"
            hour = rng.choice(["09", "10", "11", "13", "14", "15", "16"])
            start = f"{day}T{hour}:{rng.choice(['00', '30'])}:00"
            minutes, title, where = (
                rng.choice([30, 45, 60]),
                rng.choice(MEETING_TITLES),
                rng.choice(LOCATIONS),
            )
            yield (
                f'{world.greet(rep, rng)} Please put a {minutes}-minute "{title}" on my Work '
                f"calendar on {spoken_date(day)} at {spoken_time(start)} ({where}) with "
                f"{contact['name']} from {account['name']}, invite them, and log it as a "
                f'meeting on our open deal with {account["name"]}, with "{title}" as the subject.',
                [
                    *find_account(world, rep, account),
                    call("list_deals", rep_id=rep["rep_id"]),
                    call("find_user", email=rep["email"]),
                    call("list_calendars", user_id=rep["user_id"]),
                    call(
                        "create_event",
                        calendar_id=work["calendar_id"],
                        title=title,
                        start_time=start,
                        duration_minutes=minutes,
                        location=where,
                    ),
                    lambda results, c=contact: call(
                        "add_guest", event_id=results[-1]["event_id"], email=c["email"]
                    ),
                    call(
                        "log_activity",
                        deal_id=deal["deal_id"],
                        activity_type="meeting",
                        subject=title,
                    ),
                ],
                no_outputs,
                {"name": rep["name"], "email": rep["email"]},
            )


def _invite_contact(world: World, rng: random.Random, organizer: int) -> Iterator[Draft]:
    for rep in world.reps():
        events = [
            e
            for e in world.unique_events(rep["user_id"])
            if e["organizer"] == organizer
            and e["status"] != "cancelled"
            and e["start_time"] > NOW
            and e["calendar_name"] == "Work"
            and (e["title"] in CLIENT_TITLES or not organizer)
            and len(world.guests(e["event_id"])) < 8
        ]
        accounts = [a for a in world.accounts(rep["rep_id"]) if world.contacts(a["account_id"])]
        if not events or not accounts:
            continue
        event, account = rng.choice(events), rng.choice(accounts)
        contact = rng.choice(world.contacts(account["account_id"]))
        if contact["email"] in {g["email"] for g in world.guests(event["event_id"])}:
            continue
        calls = [*find_account(world, rep, account), *find_event(rep, event)]
        if organizer:
            calls.append(call("add_guest", event_id=event["event_id"], email=contact["email"]))
        yield (
            f"{world.greet(rep, rng)} Please invite {contact['name']} from {account['name']} to "
            f"{event_phrase(event)}.",
            calls,
            no_outputs,
            {"name": rep["name"], "email": rep["email"]},
        )


def invite_contact(world: World, rng: random.Random) -> Iterator[Draft]:
    """Invite one of the rep's CRM contacts to a meeting the rep organizes."""
    return _invite_contact(world, rng, organizer=1)


def invite_contact_as_guest(world: World, rng: random.Random) -> Iterator[Draft]:
    """The same request for a meeting the rep is only a guest of: only organizers may."""
    return _invite_contact(world, rng, organizer=0)


def _customer_meetings(
    world: World, rep: dict, past: bool | None
) -> Iterator[tuple[dict, list[dict]]]:
    """The rep's meetings (past, upcoming or both) with guests from one of their accounts."""
    for event in world.unique_events(rep["user_id"]):
        if event["organizer"] != 1 or event["status"] == "cancelled":
            continue
        if past is not None and (event["end_time"] <= NOW) != past:
            continue
        contacts = customer_guests(world, rep, event)
        if contacts and len({c["account_id"] for c in contacts}) == 1:
            yield event, contacts


def log_meeting_on_deal(world: World, rng: random.Random) -> Iterator[Draft]:
    """Log a past customer meeting on the open deal with that customer."""
    for rep in world.reps():
        for event, contacts in _customer_meetings(world, rep, past=True):
            contact = contacts[0]
            deals = open_deals(world, rep, contact["account_id"])
            if len(deals) != 1:
                continue
            yield (
                f"{world.greet(rep, rng)} Please log {event_phrase(event)} as a meeting on our "
                f"open deal with that customer, with the meeting's title as the subject.",
                [
                    *find_event(rep, event),
                    *find_account(world, rep, {"account_id": contact["account_id"]}),
                    call("list_deals", rep_id=rep["rep_id"]),
                    call(
                        "log_activity",
                        deal_id=deals[0]["deal_id"],
                        activity_type="meeting",
                        subject=event["title"],
                    ),
                ],
                no_outputs,
                {"name": rep["name"], "email": rep["email"]},
            )


def log_meeting_on_lost_deal(world: World, rng: random.Random) -> Iterator[Draft]:
    """The same request when the company's only deal was lost: the CRM's rule forbids it."""
    for rep in world.reps():
        for event, contacts in _customer_meetings(world, rep, past=True):
            contact = contacts[0]
            every = world.deals(rep["rep_id"], contact["account_id"])
            if len(every) != 1 or every[0]["stage"] != "closed_lost":
                continue
            yield (
                f"{world.greet(rep, rng)} Could you log {event_phrase(event)} as a meeting on "
                f"our deal with that customer? Use the meeting title as the subject.",
                [
                    *find_event(rep, event),
                    *find_account(world, rep, {"account_id": contact["account_id"]}),
                    call("list_deals", rep_id=rep["rep_id"]),
                ],
                no_outputs,
                {"name": rep["name"], "email": rep["email"]},
            )


STAGE_WORDS = {
    "prospecting": "prospecting",
    "qualification": "qualification",
    "proposal": "proposal",
    "negotiation": "negotiation",
    "closed_won": "closed_won",
    "closed_lost": "closed_lost",
}


def guest_deal_stage(world: World, rng: random.Random) -> Iterator[Draft]:
    """Which company an upcoming meeting's customer guests are from, and the deal's stage."""
    for rep in world.reps():
        for event, contacts in _customer_meetings(world, rep, past=False):
            contact = contacts[0]
            every = world.deals(rep["rep_id"], contact["account_id"])
            if len(every) != 1:
                continue
            deal = every[0]
            yield (
                f"{world.greet(rep, rng)} Before {event_phrase(event)}: which company are the "
                f"customer guests from, and what stage is our deal with them in?",
                [
                    *find_event(rep, event),
                    *find_account(world, rep, {"account_id": contact["account_id"]}),
                    call("list_deals", rep_id=rep["rep_id"]),
                ],
                lambda results, c=contact, d=deal: [c["account_name"], d["stage"]],
                {"name": rep["name"], "email": rep["email"]},
            )


def guest_job_title(world: World, rng: random.Random) -> Iterator[Draft]:
    """Who a meeting's one customer guest is, by name and job title (from the CRM)."""
    for rep in world.reps():
        for event, contacts in _customer_meetings(world, rep, past=None):
            if len(contacts) != 1:
                continue
            contact = contacts[0]
            yield (
                f"{world.greet(rep, rng)} Who is the customer contact invited to "
                f"{event_phrase(event)}? I need their name and job title.",
                [
                    *find_event(rep, event),
                    *find_account(world, rep, {"account_id": contact["account_id"]}),
                ],
                lambda results, c=contact: [c["name"], c["title"]],
                {"name": rep["name"], "email": rep["email"]},
            )


# ----- CRM + mail --------------------------------------------------------------------------------
EMAIL_SUBJECTS = [
    "Next steps on our proposal",
    "Updated pricing for your team",
    "Following up on our call",
    "Contract draft for review",
    "Implementation timeline",
    "Renewal options for next year",
]
EMAIL_BODIES = [
    "Thanks for your time this week. The updated numbers are attached; let me know your questions.",
    "Following up on our conversation: could we find 30 minutes next week to go over the details?",
    "As promised, here is a summary of the options we discussed. Happy to walk you through them.",
    "Just checking in to see whether you had a chance to review the documents I sent.",
]


def email_contact_and_log(world: World, rng: random.Random) -> Iterator[Draft]:
    """Draft an email to a contact and log it on the account's open deal."""
    for rep in world.reps():
        for account in world.accounts(rep["rep_id"]):
            deals, contacts = (
                open_deals(world, rep, account["account_id"]),
                world.contacts(account["account_id"]),
            )
            if len(deals) != 1 or not contacts:
                continue
            contact, subject, body = (
                rng.choice(contacts),
                rng.choice(EMAIL_SUBJECTS),
                rng.choice(EMAIL_BODIES),
            )
            subject = f"{subject}, {account['name']}"
            if not world.draft_subject_free(rep["account_id"], subject):
                continue
            yield (
                f"{world.greet(rep, rng)} Please draft an email to {contact['name']} at "
                f'{account["name"]} with the subject "{subject}" saying: "{body}" Then log it as '
                f"an email on our open deal with them, same subject.",
                [
                    *find_account(world, rep, account),
                    call("list_deals", rep_id=rep["rep_id"]),
                    call("find_account", email=rep["email"]),
                    call(
                        "create_draft",
                        account_id=rep["account_id"],
                        to_address=contact["email"],
                        subject=subject,
                        body=body,
                    ),
                    call(
                        "log_activity",
                        deal_id=deals[0]["deal_id"],
                        activity_type="email",
                        subject=subject,
                    ),
                ],
                no_outputs,
                {"name": rep["name"], "email": rep["email"]},
            )


def sender_deal_amount(world: World, rng: random.Random) -> Iterator[Draft]:
    """The amount of the open deal with the company of a customer who emailed the rep."""
    for rep in world.reps():
        for message in world.messages(rep["account_id"]):
            contact = world.contact(message["sender"])
            if not contact or contact["owner_rep_id"] != rep["rep_id"]:
                continue
            deals = open_deals(world, rep, contact["account_id"])
            if len(deals) != 1:
                continue
            yield (
                f'{world.greet(rep, rng)} I got an email about "{message["subject"]}" from one '
                f"of my customers. Which company are they with, and how much is our open deal "
                f"with that company worth?",
                [
                    call("find_account", email=rep["email"]),
                    call("list_messages", account_id=rep["account_id"], query=message["subject"]),
                    *find_account(world, rep, {"account_id": contact["account_id"]}),
                    call("list_deals", rep_id=rep["rep_id"]),
                ],
                lambda results, c=contact, d=deals[0]: [c["account_name"], str(d["amount"])],
                {"name": rep["name"], "email": rep["email"]},
            )


KINDS: list[tuple[str, str, Callable[[World, random.Random], Iterator[Draft]], int]] = [
    ("decline_and_tell_organizer", "multi_write", decline_and_tell_organizer, 50),
    ("invite_sender", "write", invite_sender, 40),
    ("invite_sender_refused", "refusal", invite_sender_refused, 25),
    ("meeting_with_contact", "multi_write", meeting_with_contact, 50),
    ("invite_contact", "write", invite_contact, 30),
    ("invite_contact_as_guest", "refusal", invite_contact_as_guest, 20),
    ("log_meeting_on_deal", "write", log_meeting_on_deal, 25),
    ("log_meeting_on_lost_deal", "refusal", log_meeting_on_lost_deal, 7),
    ("guest_deal_stage", "read", guest_deal_stage, 25),
    ("guest_job_title", "read", guest_job_title, 30),
    ("email_contact_and_log", "multi_write", email_contact_and_log, 50),
    ("sender_deal_amount", "read", sender_deal_amount, 30),
]


def resolve(package: Any, steps: list[Step]) -> list[ToolCall]:
    """The ground-truth calls with every late-bound step built from the results before it."""
    db = package.new_database()
    calls, results = [], []
    try:
        for step in steps:
            made = step(results) if callable(step) else step
            tool = package.tools[made.name]
            with db.call():
                results.append(tool(db, **tool.validate(made.arguments)))
            calls.append(made)
    finally:
        db.close()
    return calls


def build(seed: int = 11) -> list[Task]:
    package = load_package("workspace")
    world = World({name: _copy(conn) for name, conn in package.member_templates().items()})
    tasks: list[Task] = []
    for name, kind, make, count in KINDS:
        rng = random.Random(f"{seed}:{name}")
        drafts = list(make(world, rng))
        rng.shuffle(drafts)
        made, used = 0, set()
        for instruction, steps, outputs, facts in drafts:
            if made == count:
                break
            if instruction in used:
                continue
            try:
                task = task_from_calls(
                    package,
                    resolve(package, steps),
                    outputs,
                    id=f"workspace-{name}-{made:03d}",
                    split="test" if made % 5 == 4 else "train",
                    kind=kind,
                    instruction=instruction,
                    user_facts=facts,
                )
            except (ToolError, ValueError, KeyError):
                continue
            if kind in ("write", "multi_write") and not task.expected_diff:
                continue
            used.add(instruction)
            tasks.append(task)
            made += 1
        if made < count:
            raise RuntimeError(f"only {made} of {count} {name} tasks could be built")
    return tasks


def _copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    copy = sqlite3.connect(":memory:")
    conn.backup(copy)
    return copy


def main() -> None:
    tasks = build()
    path = Path(__file__).with_name("tasks.jsonl")
    write_tasks(path, tasks)
    print(f"wrote {len(tasks)} tasks to {path}")


if __name__ == "__main__":
    main()
