"""User simulators: who answers when the agent talks to the user."""

from __future__ import annotations

import re
from typing import Protocol

from envfactory_gym.tasks import Task

_CONFIRMATION = re.compile(
    r"\b(confirm|proceed|go ahead|shall i|should i|would you like|do you want"
    r"|is that (ok|right|correct))\b"
)


class UserSimulator(Protocol):
    def reset(self, task: Task) -> None: ...

    def reply(self, agent_message: str) -> str | None:
        """The user's answer, or None when the agent's message ends the conversation."""
        ...


class ScriptedUser:
    """Deterministic user: answers questions from the task's known facts, confirms requests.

    A message without a question mark is the agent's final answer. A question is answered from
    the facts whose names it mentions, else with a confirmation; after `max_replies` answers the
    next message ends the episode.
    """

    def __init__(self, max_replies: int = 3) -> None:
        self.max_replies = max_replies
        self.facts: dict[str, str] = {}
        self.replies_left = max_replies

    def reset(self, task: Task) -> None:
        self.facts = dict(task.user_facts)
        self.replies_left = self.max_replies

    def reply(self, agent_message: str) -> str | None:
        if self.replies_left <= 0 or "?" not in agent_message:
            return None
        self.replies_left -= 1
        asked = agent_message.casefold()
        answers = [
            f"My {name.replace('_', ' ')} is {value}."
            for name, value in self.facts.items()
            if _mentions(asked, name)
        ]
        if answers:
            return " ".join(answers)
        if _CONFIRMATION.search(asked):
            return "Yes, please go ahead."
        return "I've told you everything I know. Please go ahead with what I asked."


def _mentions(text: str, fact_name: str) -> bool:
    words = [w for w in re.split(r"[_\s]+", fact_name.casefold()) if w]
    return " ".join(words) in text or (len(words) > 1 and all(w in text for w in words))
