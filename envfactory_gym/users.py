"""User simulators: who answers when the agent talks to the user.

A user simulator has `reset(task, seed=None)` and `reply(agent_message) -> str | None`; `None`
ends the conversation (the env then scores the episode). Two ship here, both reading the same
`UserProfile` (persona, reason for contact, known and unknown facts, reactions: the task's own
fields where it sets them, derived from its instruction and ground truth where it does not):

- `ScriptedUser` (the env's default): deterministic rules, no model.
- `LLMUser`: a chat model plays the user, seeded and cached on disk, so a replayed evaluation gets
  the same replies without calling the model. The runtime never imports a model client: pass any
  `chat(messages, seed) -> str`, or build one for an OpenAI-compatible server with `openai_chat`
  (which imports `openai` only when first called).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from envfactory_gym.specs import parse_spec_options, thinking_body
from envfactory_gym.tasks import Task, UserReactions

STOP_MARKER = "###STOP###"
"""What an LLM user writes to end the conversation (tau-bench's marker)."""
USER_CACHE_ENV = "ENVFACTORY_USER_CACHE"
"""Environment variable: the LLM user's cache folder; `off` turns the cache off."""
CACHE_VERSION = 1
"""Part of every cache key: bump it when the prompt or the key's meaning changes."""

ChatFn = Callable[[list[dict[str, str]], int], str]
"""`chat(messages, seed) -> reply`: OpenAI-style messages in, the reply's text out."""

DEFAULT_REACTIONS = UserReactions(
    confirm="Yes, please go ahead.",
    decline="No, please don't do that. That isn't what I asked for.",
    unknown="Sorry, I don't know that. I've told you everything I know; please go ahead with "
    "what I asked.",
    guidance="Say yes only to an action that does what you asked for and no to anything else. "
    "If you are asked for something you do not know, say so; never make details up.",
)


class UserSimulator(Protocol):
    """What the env calls: `reset` at the start of each episode, `reply` on each message the agent
    writes to the user (tool calls never reach the user). Implementations may also accept
    `reset(task, seed=...)`; the env passes its reset seed when they do."""

    def reset(self, task: Task) -> None: ...

    def reply(self, agent_message: str) -> str | None:
        """The user's answer, or None when the agent's message ends the conversation."""
        ...


def reset_user(user: UserSimulator, task: Task, seed: int | None) -> None:
    """`user.reset(task, seed=seed)` when the simulator takes a seed, else `user.reset(task)`."""
    if _takes_seed(type(user)):
        user.reset(task, seed=seed)  # type: ignore[call-arg]
    else:
        user.reset(task)


@functools.cache
def _takes_seed(kind: type) -> bool:
    try:
        return "seed" in inspect.signature(kind.reset).parameters
    except (AttributeError, TypeError, ValueError):  # no signature to read
        return False


# ----- what the user is ---------------------------------------------------------------------
class UserProfile(BaseModel):
    """Everything a simulated user knows about themselves, resolved for one task: the task's
    `persona`, `reason_for_contact`, `user_facts`, `user_unknowns` and `user_reactions`, each
    derived when the task leaves it empty (see `for_task`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task_id: str
    opening: str = Field(description="The message the user opened the conversation with.")
    persona: str
    reason: str
    known: dict[str, str] = Field(description="Fact name -> value, told only when asked.")
    unknown: list[str] = Field(description="Things the user does not know (say so if asked).")
    reactions: UserReactions

    @classmethod
    def for_task(cls, task: Task) -> UserProfile:
        """The task's profile. Defaults for empty fields: persona from the user's name (when a
        fact holds one), reason = the instruction, unknowns = the names of the ground truth's
        id-like arguments (`reservation_id`, `order_id`...) whose values neither the instruction
        nor the facts contain, reactions = `DEFAULT_REACTIONS` field by field."""
        name = task.user_facts.get("name") or task.user_facts.get("full_name")
        persona = task.persona or (
            f"{name}, a customer who writes short, polite messages and is not an expert in how "
            "the service works."
            if name
            else "A customer who writes short, polite messages and is not an expert in how the "
            "service works."
        )
        reactions = UserReactions(
            **{
                field: getattr(task.user_reactions, field) or getattr(DEFAULT_REACTIONS, field)
                for field in UserReactions.model_fields
            }
        )
        return cls(
            task_id=task.id,
            opening=task.instruction,
            persona=persona,
            reason=task.reason_for_contact or task.instruction,
            known=dict(task.user_facts),
            unknown=list(task.user_unknowns) or derived_unknowns(task),
            reactions=reactions,
        )


_ID_LIKE = re.compile(r"(?=[\w.-]*[A-Za-z])(?=[\w.-]*\d)[\w.-]{4,}")
_ID_ARGUMENT = re.compile(r"(^|_)(id|ids|number|code|key|ref|reference)$")
_NOT_AN_ID = re.compile(
    r"\d{4}-\d\d-\d\d(t[\d:.]+z?)?|\d+(st|nd|rd|th|am|pm|h|hr|hrs|m|min|mins|s|x|k|kg|g|gb|mb|tb"
    r"|km|mi|lb|lbs|oz|ml|l|usd|eur|gbp|pts|mo|yr|yrs|d)",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def derived_unknowns(task: Task) -> list[str]:
    """Names (in words) of the ground truth's arguments that identify records the user cannot
    know: id-like argument names or values that the instruction and the facts do not contain."""
    said = " ".join([task.instruction, *task.user_facts.values()]).casefold()
    unknown: dict[str, None] = {}
    for call in task.calls:
        for argument, value in call.arguments.items():
            if argument in call.masked or not isinstance(value, str | int) or str(value) == "":
                continue
            text = str(value)
            if text.casefold() in said:
                continue
            if _ID_ARGUMENT.search(argument) or (_identifiers(text) and " " not in text):
                unknown.setdefault(argument.replace("_", " "), None)
    return list(unknown)


def _identifiers(text: str) -> set[str]:
    """Record-like tokens in `text`, casefolded: emails and words mixing letters and digits
    (`AIQP49`, `credit_card_4725654`), not dates, times or quantities (`2pm`, `10kg`)."""
    found = {m.group(0).casefold() for m in _EMAIL.finditer(text)}
    rest = _EMAIL.sub(" ", text)
    for match in _ID_LIKE.finditer(rest):
        token = match.group(0).strip(".-_")
        if len(token) >= 4 and not _NOT_AN_ID.fullmatch(token):
            found.add(token.casefold())
    return found


def _leaves(value: Any) -> Iterator[str]:
    """Every scalar (as text) and every dict key in JSON-like data."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        yield str(value)


# ----- reading the agent's message ----------------------------------------------------------
_REQUEST = re.compile(
    r"\?|\b(please (provide|share|give|tell|send|confirm|enter|state|let)|could you|can you"
    r"|would you|may i (have|ask|get)|i need|i'll need|i will need|i would need|tell me"
    r"|let me know|what is|what's|which)\b"
)
_MORE_HELP = re.compile(
    r"\b(anything else|something else|any other (questions?|requests?|way)|else i can"
    r"|(can|may) i help( you)? with|(have|has) a (great|nice|good) (day|trip|flight|one))\b"
)
_PROPOSAL = re.compile(
    r"\b(shall|should|can|may) (i|we)\b|\bwould you like\b|\bdo you want\b|\bwant me to\b"
    r"|\b(do you |please )?(confirm|approve|agree)\b|\bis (that|this|it) (ok|okay|right|correct"
    r"|fine|alright)\b|\b(ok|okay) (to|if i)\b|\bgo ahead\b|\bproceed\b"
)
_LEAD_IN = re.compile(
    r"\b(?:(?:shall|should|can|may) (?:i|we)|would you like (?:me|us) to|do you want (?:me|us) to"
    r"|want me to|(?:i|we) (?:will|'ll|can|am going to|'m going to|would)|confirm(?: that)?"
    r"|approve|ok(?:ay)? (?:to|if i)|go ahead (?:and|with)|proceed (?:with|to))\s+"
)
_FILLER = frozenset(
    [
        "also",
        "now",
        "then",
        "just",
        "first",
        "please",
        "go",
        "ahead",
        "and",
        "proceed",
        "with",
        "to",
        "the",
        "a",
        "an",
        "your",
        "this",
        "that",
        "these",
        "those",
        "my",
        "our",
        "it",
        "them",
        "its",
        "all",
        "both",
    ]
)
_COMPLETION = re.compile(
    r"\b(all set|all done|taken care of|successfully|completed|done|(has|have) (now )?been"
    r"|is now|are now|went through)\b"
)
ACTIONS: dict[str, re.Pattern[str]] = {
    kind: re.compile(words)
    for kind, words in {
        "cancel": r"cancel(l?ed|l?ing|s|l?ations?)?|delet(e|es|ed|ing|ion)|remov(e|es|ed|ing|al)"
        r"|terminat(e|es|ed|ing|ion)|void(s|ed|ing)?|withdraw(s|n|al|ing)?|revok(e|es|ed|ing)"
        r"|unsubscrib(e|es|ed|ing)|drop(s|ped|ping)?|clos(e|es|ed|ing|ure)"
        r"|discontinu(e|es|ed|ing)",
        "create": r"book(s|ed|ing)?|reserv(e|es|ed|ing)|creat(e|es|ed|ing|ion)|add(s|ed|ing)?"
        r"|plac(e|es|ed|ing)|open(s|ed|ing)?|register(s|ed|ing)?|registration|enrol(l|ls|led"
        r"|ling|ment)?|subscrib(e|es|ed|ing)|purchas(e|es|ed|ing)|buy(s|ing)?|bought"
        r"|order(s|ed|ing)?|schedul(e|es|ed|ing)|submit(s|ted|ting)?|fil(e|es|ed|ing)"
        r"|issu(e|es|ed|ing)|apply|applies|applied|applying",
        "modify": r"chang(e|es|ed|ing)|updat(e|es|ed|ing)|modif(y|ies|ied|ying|ication)"
        r"|mov(e|es|ed|ing)|switch(es|ed|ing)?|reschedul(e|es|ed|ing)|edit(s|ed|ing)?"
        r"|renam(e|es|ed|ing)|upgrad(e|es|ed|ing)|downgrad(e|es|ed|ing)|set(s|ting)?"
        r"|replac(e|es|ed|ing)|swap(s|ped|ping)?|adjust(s|ed|ing)?|extend(s|ed|ing)?"
        r"|postpon(e|es|ed|ing)|rebook(s|ed|ing)?",
        "return": r"return(s|ed|ing)?|exchang(e|es|ed|ing)",
        "handoff": r"transfer(s|red|ring)?|escalat(e|es|ed|ing)|connect(s|ed|ing)?"
        r"|hand(s|ed|ing)?",
    }.items()
}
"""Kinds of change a proposal can make, by verb (checked against the task's intent); a verb
in none of them ('pay', 'look up') is neutral."""


def _actions_of(words: list[str]) -> set[str]:
    return {kind for kind, verbs in ACTIONS.items() for word in words if verbs.fullmatch(word)}


def _proposed_actions(text: str) -> set[str]:
    """The kinds of change the message proposes: the verb after each lead-in ('shall I', 'would
    you like me to', 'confirm'...), skipping filler words."""
    kinds: set[str] = set()
    for match in _LEAD_IN.finditer(text):
        words = re.findall(r"[a-z']+", text[match.end() : match.end() + 80])
        verb = next((w for w in words if w not in _FILLER), None)
        if verb is not None:
            kinds |= _actions_of([verb])
    return kinds


def _phrases(fact: str) -> list[str]:
    """How an agent may name a fact: its key in words, its synonyms, and for a several-word key
    its distinctive words ('station number' -> 'station')."""
    key = re.sub(r"[_\s-]+", " ", fact.casefold()).strip()
    phrases = [key, *FACT_SYNONYMS.get(key, ())]
    words = key.split()
    if len(words) > 1:
        phrases += [w for w in words if w not in _GENERIC_WORDS]
    return phrases


_GENERIC_WORDS = frozenset({"name", "number", "id", "code", "the", "of", "my", "full", "user"})
FACT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "email": ("e-mail", "email address", "mail address", "e-mail address"),
    "name": ("full name", "who am i speaking", "who i am speaking", "who is this", "your name"),
    "full name": ("name",),
    "first name": ("given name",),
    "last name": ("surname", "family name"),
    "zip": ("zip code", "zipcode", "postal code", "postcode", "post code"),
    "user id": ("userid", "username", "user name", "account id", "customer id", "login"),
    "phone": ("phone number", "telephone", "mobile", "cell number", "contact number"),
    "code": ("confirmation code", "pin", "passcode", "access code"),
    "reason": ("why",),
    "insurance": ("insured", "travel insurance"),
    "address": ("street address", "mailing address", "shipping address", "where you live"),
    "date of birth": ("birthday", "birth date", "dob"),
}
"""Other words for common fact names (keys in words, casefolded)."""


@functools.cache
def _phrase_pattern(phrase: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w@.-]){re.escape(phrase)}(?![\w@-])")


def _dominated(
    span: tuple[int, int, bool], name: str, everything: list[tuple[str, tuple[int, int, bool]]]
) -> bool:
    """Whether another fact's mention covers this one and is longer, or is the same words but
    that fact's own key (so 'full name' asks for `full_name`, not for `name`'s synonym)."""
    start, end, exact = span
    return any(
        other != name
        and o_start <= start
        and end <= o_end
        and (o_end - o_start > end - start or (o_exact and not exact))
        for other, (o_start, o_end, o_exact) in everything
    )


class _TaskReading(NamedTuple):
    """What the scripted user reads from a task once: its profile, the records it involves and
    the kinds of change its intent holds."""

    profile: UserProfile
    records: frozenset[str]
    intent: frozenset[str]


def _read_task(task: Task) -> _TaskReading:
    involved = [
        task.instruction,
        *task.user_facts.values(),
        *task.outputs,
        *_leaves([c.arguments for c in task.calls]),
        *_leaves(task.expected_diff),
        *_leaves(task.allowed_writes),
    ]
    verbs = [call.name.split("_")[0].casefold() for call in task.calls]
    verbs += [  # past forms tell history ('I booked it yesterday'), not what is wanted
        word
        for word in re.findall(r"[a-z']+", task.instruction.casefold())
        if not word.endswith("ed") and word != "bought"
    ]
    return _TaskReading(
        profile=UserProfile.for_task(task),
        records=frozenset(r for text in involved for r in _identifiers(text)),
        intent=frozenset(_actions_of(verbs)),
    )


class ScriptedUser:
    """Deterministic user: reveals only what is asked, confirms or declines proposals, leaves
    when the agent is done. Reads the task's `UserProfile` (the LLM user reads the same).

    Each message the agent writes to the user is read in this order; the first rule that applies
    gives the reply:

    1. **A question about facts** (a '?' or a request such as 'could you', 'please provide',
       'what is'), naming facts the user knows by key or synonym ('email', 'e-mail address';
       'zip', 'postal code'; 'user id', 'username'; see `FACT_SYNONYMS`) whose values the message
       does not already contain (in a message that also proposes an action, only 'your
       <fact>' counts): 'My <fact> is <value>.' for each, and nothing else.
    2. **More help offered** ('anything else?'): the conversation ends.
    3. **A proposal** ('shall I...', 'would you like me to...', 'do you confirm', 'is that
       correct?'): the `confirm` reaction when it matches the task's intent, else `decline`. It
       matches when every record it names (a token mixing letters and digits, or an email) is
       one the task involves (its instruction, facts, ground-truth calls, expected changes and
       outputs) and every change it proposes (the verb after 'shall I', 'confirm'...: cancel,
       create, modify, return, handoff; see `ACTIONS`) is one the task's intent holds: the
       verbs leading its ground-truth tool names (`cancel_reservation`) and the verbs of its
       instruction except past forms (what the user asked for, refused or not; 'I booked it
       yesterday' is history). A bare 'shall I proceed?'
       matches.
    4. **Completion reported** ('has been cancelled', 'all set', 'done'): the conversation ends.
    5. **Any other question**: the `unknown` reaction (the user knows nothing more).
    6. **No question at all**: the agent's final answer; the conversation ends.

    After `max_replies` replies the next message ends the conversation. The reward never
    depends on the user: only on the database and on what the agent said.
    """

    CACHED_TASKS = 4096
    """How many tasks' readings (profile, records, intent) one user keeps; reading a task costs
    a few hundred microseconds, so it happens once per task, on the first reply."""

    def __init__(self, max_replies: int = 3) -> None:
        self.max_replies = max_replies
        self.replies_left = max_replies
        self.task: Task | None = None
        self._readings: dict[str, tuple[Task, _TaskReading]] = {}

    @property
    def profile(self) -> UserProfile | None:
        """The current task's profile (None before `reset`)."""
        return None if self.task is None else self._reading().profile

    @property
    def known_records(self) -> frozenset[str]:
        """The records (ids, emails) the current task involves, casefolded."""
        return self._reading().records if self.task is not None else frozenset()

    @property
    def intent(self) -> frozenset[str]:
        """The kinds of change (`ACTIONS`) the current task's intent holds."""
        return self._reading().intent if self.task is not None else frozenset()

    @property
    def facts(self) -> dict[str, str]:
        """The facts the user knows (empty before `reset`)."""
        return dict(self.task.user_facts) if self.task is not None else {}

    def reset(self, task: Task, seed: int | None = None) -> None:
        self.task = task
        self.replies_left = self.max_replies

    def _reading(self) -> _TaskReading:
        assert self.task is not None
        cached = self._readings.get(self.task.id)
        if cached is not None and cached[0] is self.task:
            return cached[1]
        if len(self._readings) >= self.CACHED_TASKS:
            self._readings.clear()
        reading = _read_task(self.task)
        self._readings[self.task.id] = (self.task, reading)
        return reading

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_readings": {}}  # recomputed on demand

    def reply(self, agent_message: str) -> str | None:
        if self.task is None:
            raise RuntimeError("call reset(task) before reply()")
        if self.replies_left <= 0:
            return None
        answer = self._answer(agent_message)
        if answer is not None:
            self.replies_left -= 1
        return answer

    def matches_intent(self, proposal: str) -> bool:
        """Whether a proposed action names only records the task involves and only changes
        its intent holds (rule 3)."""
        if _identifiers(proposal) - self.known_records:
            return False
        return _proposed_actions(proposal.casefold()) <= self.intent

    def asked_facts(self, agent_message: str) -> list[str]:
        """The known facts the message asks for (rule 1), in the task's order."""
        assert self.profile is not None
        text = agent_message.casefold()
        if not _REQUEST.search(text):
            return []
        # in a proposal ('shall I send the reminder by email?') only 'your <fact>' asks for it
        owner = "your " if _PROPOSAL.search(text) else ""
        spans = {
            name: [
                (match.start(), match.end(), phrase == _phrases(name)[0])
                for phrase in _phrases(name)
                for match in _phrase_pattern(owner + phrase).finditer(text)
            ]
            for name, value in self.profile.known.items()
            if value.casefold() not in text
        }
        everything = [(name, span) for name, found in spans.items() for span in found]
        return [  # a mention inside another fact's longer one ('lab name' holds 'name') is not one
            name
            for name, found in spans.items()
            if any(not _dominated(span, name, everything) for span in found)
        ]

    def _answer(self, agent_message: str) -> str | None:
        assert self.profile is not None
        text = agent_message.casefold()
        asked = self.asked_facts(agent_message)
        if asked:
            return " ".join(
                f"My {name.replace('_', ' ')} is {self.profile.known[name]}." for name in asked
            )
        if _MORE_HELP.search(text):
            return None
        if _PROPOSAL.search(text):
            reactions = self.profile.reactions
            return reactions.confirm if self.matches_intent(agent_message) else reactions.decline
        if _COMPLETION.search(text) or "?" not in text:
            return None
        return self.profile.reactions.unknown


# ----- the LLM user -------------------------------------------------------------------------
def user_cache_dir(configured: str | Path | None = None) -> Path | None:
    """The LLM user's cache folder: `configured`, else $ENVFACTORY_USER_CACHE, else
    ~/.cache/envfactory_gym/users (XDG_CACHE_HOME respected). 'off' (argument or variable)
    turns the cache off: None."""
    value = configured if configured is not None else os.environ.get(USER_CACHE_ENV)
    if value is not None:
        if str(value).strip().lower() in ("", "0", "off", "false", "none"):
            return None
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "envfactory_gym" / "users"


class CachedReply(BaseModel):
    """One cache file: the reply to one conversation state, with what its key was made of."""

    model_config = ConfigDict(extra="forbid")

    version: int
    key: str
    task_id: str
    model: str
    seed: int
    turn: int = Field(ge=1, description="Which reply of the episode this is, from 1.")
    reply: str


def cache_key(task_id: str, messages: list[dict[str, str]], seed: int, model: str) -> str:
    """SHA-256 of the task id, the user model's whole conversation so far (its system prompt
    included, so a changed prompt or profile is a different key), the seed and the model."""
    payload = json.dumps(
        {"v": CACHE_VERSION, "task": task_id, "messages": messages, "seed": seed, "model": model},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def user_prompt(profile: UserProfile, stop_marker: str = STOP_MARKER) -> str:
    """The LLM user's system prompt: stay in character, tell only what is asked, never do the
    agent's work, stop with the marker."""
    known = "\n".join(f"- {k.replace('_', ' ')}: {v}" for k, v in profile.known.items())
    unknown = "\n".join(f"- {item}" for item in profile.unknown)
    reactions = profile.reactions
    return (
        "You are role-playing a customer talking to a customer-support agent. You are the "
        "customer for the whole conversation, never the agent, and you never mention that you "
        "are an AI or a simulation.\n\n"
        f"# Who you are\n{profile.persona}\n\n"
        f"# Why you got in touch\n{profile.reason}\n\n"
        "# How the conversation started\nYou have already sent your first message:\n"
        f'"{profile.opening}"\nEvery message you receive now comes from the agent.\n\n'
        "# What you know\nGive an item only when the agent asks for it, give exactly that item, "
        f"and copy its value exactly:\n{known or '- nothing beyond your first message'}\n\n"
        "# What you do not know\nIf the agent asks for any of these (or anything else not "
        f"above), say you don't know; never invent a value:\n{unknown or '- anything not above'}"
        "\n\n# How to react\n"
        f"- {reactions.guidance}\n"
        "- When the agent proposes an action and asks you to confirm: if it does what you asked "
        f'for, agree (for example: "{reactions.confirm}"); if it does not, refuse (for example: '
        f'"{reactions.decline}").\n'
        f'- When asked something you cannot answer, say so (for example: "{reactions.unknown}").'
        "\n- Do not solve the task for the agent: do not name tools, look things up, compute "
        "prices or dates, or tell the agent which steps to take. Only say what a customer would."
        "\n- Keep each message short (one to three sentences), in plain text.\n"
        f"- When your request has been handled, or the agent has told you it cannot be done and "
        f"you have nothing left to ask, reply with exactly {stop_marker} and nothing else."
    )


_THINK = re.compile(r"<think>.*?(</think>|\Z)", re.DOTALL)


class LLMUser:
    """A chat model plays the user, reproducibly.

    The model gets a system prompt written from the task's `UserProfile` (`user_prompt`: stay in
    character, tell a known fact only when asked, say "I don't know" otherwise, never solve the
    task for the agent, confirm only what matches the request) and the conversation from its
    side (the agent's messages as `user`, its own replies as `assistant`; its opening message is
    in the prompt). `reply` returns the model's text with `<think>` blocks removed, or None
    (the conversation ends) when the text contains `stop_marker`, is empty, or `max_replies`
    replies were given.

    Reproducible: every reply is cached on disk under a key of (task id, the whole conversation
    so far including the prompt, seed, model) (`cache_key`). The same key returns the cached
    reply without calling `chat`, so a replayed evaluation is identical and free; a different
    seed, model, task or conversation is another key. The seed is the env's reset seed when one
    is given (`reset(task, seed=...)`), else the `seed` argument; `chat` receives it with each
    request (a server that honours seeds then samples reproducibly even without the cache).

    Arguments:
        chat: `chat(messages, seed) -> str` (any backend; `openai_chat` builds one for an
            OpenAI-compatible server). Its return value must be a `str`.
        model: the model's name, part of the cache key; defaults to `chat.model` when `chat`
            has one (as `openai_chat`'s does).
        seed: the default seed.
        cache_dir: the cache folder; default `user_cache_dir()` ($ENVFACTORY_USER_CACHE, else
            ~/.cache/envfactory_gym/users); 'off' disables the cache (every reply calls `chat`).
        stop_marker: the text that ends the conversation.
        max_replies: the most replies per episode (None: no limit besides the env's max_turns).

    `calls` counts the requests sent to `chat`, `cache_hits` the replies served from disk.
    """

    def __init__(
        self,
        chat: ChatFn,
        *,
        model: str | None = None,
        seed: int = 0,
        cache_dir: str | Path | None = None,
        stop_marker: str = STOP_MARKER,
        max_replies: int | None = None,
    ) -> None:
        if not callable(chat):
            raise TypeError(f"chat must be callable as chat(messages, seed), got {chat!r}")
        model = model if model is not None else getattr(chat, "model", None)
        if not isinstance(model, str) or not model:
            raise ValueError(
                "LLMUser needs the model's name for its cache key: pass model=..., or a chat "
                "function with a .model attribute (openai_chat gives one)"
            )
        if not stop_marker:
            raise ValueError("stop_marker must not be empty")
        self.chat = chat
        self.model = model
        self.default_seed = seed
        self.seed = seed
        self.cache_dir = user_cache_dir(cache_dir)
        self.stop_marker = stop_marker
        self.max_replies = max_replies
        self.profile: UserProfile | None = None
        self.messages: list[dict[str, str]] = []
        self.replies = 0
        self.calls = 0
        self.cache_hits = 0

    def reset(self, task: Task, seed: int | None = None) -> None:
        self.profile = UserProfile.for_task(task)
        self.seed = self.default_seed if seed is None else int(seed)
        self.messages = [{"role": "system", "content": user_prompt(self.profile, self.stop_marker)}]
        self.replies = 0

    def reply(self, agent_message: str) -> str | None:
        if self.profile is None:
            raise RuntimeError("call reset(task) before reply()")
        if self.max_replies is not None and self.replies >= self.max_replies:
            return None
        self.messages.append({"role": "user", "content": agent_message})
        raw = self._complete()
        self.messages.append({"role": "assistant", "content": raw})
        self.replies += 1
        text = _THINK.sub("", raw).rpartition("</think>")[2].strip()  # a template's own <think>
        if not text or self.stop_marker in text:
            return None
        return text

    def _complete(self) -> str:
        """The reply to the conversation so far: from the cache, else from `chat` (then cached)."""
        assert self.profile is not None
        key = cache_key(self.profile.task_id, self.messages, self.seed, self.model)
        path = None if self.cache_dir is None else self.cache_dir / key[:2] / f"{key}.json"
        if path is not None and path.is_file():
            try:
                entry = CachedReply.model_validate_json(path.read_bytes())
            except (ValidationError, OSError) as exc:
                warnings.warn(
                    f"ignoring an unreadable user cache entry {path}: {exc}", stacklevel=3
                )
            else:
                if entry.key == key:
                    self.cache_hits += 1
                    return entry.reply
        self.calls += 1
        reply = self.chat([dict(m) for m in self.messages], self.seed)
        if not isinstance(reply, str):
            raise TypeError(
                f"the user's chat function must return the reply as str, got {type(reply).__name__}"
            )
        if path is not None:
            entry = CachedReply(
                version=CACHE_VERSION,
                key=key,
                task_id=self.profile.task_id,
                model=self.model,
                seed=self.seed,
                turn=self.replies + 1,
                reply=reply,
            )
            _write_atomically(path, entry.model_dump_json(indent=1))
        return reply


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so concurrent episodes never read half a file;
    an unwritable cache is skipped with a warning (the episode goes on)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        warnings.warn(f"could not write the user cache entry {path}: {exc}", stacklevel=4)


class ChatReply(BaseModel):
    """The part of an OpenAI-compatible chat completion the user reads."""

    model_config = ConfigDict(extra="ignore")

    content: str | None = None


class OpenAIChat:
    """`chat(messages, seed) -> str` over an OpenAI-compatible `/v1/chat/completions` server
    (vLLM, SGLang, `transformers serve`, OpenAI). `openai` is imported on the first call.

    Arguments: `model`; `base_url` (default $OPENAI_BASE_URL, else OpenAI's); `api_key`
    (default $OPENAI_API_KEY, else 'EMPTY', which local servers accept); `temperature`,
    `max_tokens`, `timeout` (seconds); `extra_body` (sent as is, e.g.
    `{"chat_template_kwargs": {"enable_thinking": False}}` for Qwen3 on vLLM).
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        temperature: float = 1.0,
        max_tokens: int = 256,
        timeout: float = 120.0,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY"
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.timeout = timeout
        self.extra_body = dict(extra_body or {})
        self._client: Any = None

    def __call__(self, messages: list[dict[str, str]], seed: int) -> str:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:  # pragma: no cover - openai is a declared dependency
                raise ImportError(
                    "openai_chat needs the openai package: pip install openai"
                ) from exc
            self._client = openai.OpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout
            )
        response = self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            seed=seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            extra_body=self.extra_body or None,
        )
        if not response.choices:
            raise RuntimeError(f"{self.base_url}: the chat completion has no choices")
        message = ChatReply.model_validate(response.choices[0].message.model_dump())
        return message.content or ""

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}  # the client holds sockets: rebuilt on use

    def __repr__(self) -> str:
        return f"OpenAIChat(model={self.model!r}, base_url={self.base_url!r})"


def openai_chat(model: str, base_url: str | None = None, **options: Any) -> OpenAIChat:
    """A chat function for `LLMUser` over an OpenAI-compatible server, e.g.
    `LLMUser(openai_chat("Qwen/Qwen3-8B", "http://localhost:8000/v1"))`; options as `OpenAIChat`.
    """
    return OpenAIChat(model, base_url, **options)


_USER_OPTIONS = {"temperature": float, "timeout": float, "max_tokens": int, "thinking": "bool"}


def llm_user_from_spec(spec: str) -> LLMUser:
    """An `LLMUser` from a spec: `openai:MODEL@URL[?temperature=0.7&max_tokens=256&thinking=0]`
    (what `envfactory eval --user` takes). `thinking=0|1` is sent as Qwen3's
    `chat_template_kwargs`. Options are parsed as the agents' are (`envfactory_gym.specs`)."""
    expected = f"user {spec!r}: expected scripted, or openai:MODEL@URL[?options]"
    if not spec.startswith("openai:"):
        raise ValueError(expected)
    target, options = parse_spec_options(spec, _USER_OPTIONS, what="user")
    model, at, url = target.rpartition("@")
    if not (at and model and url):
        raise ValueError(expected)
    if "thinking" in options:
        options["extra_body"] = thinking_body(options.pop("thinking"))
    return LLMUser(openai_chat(model, url, **options))
