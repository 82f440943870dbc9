"""`ToolUseEnv`: one Gymnasium environment over an env package, text in and text out."""

from __future__ import annotations

import difflib
import json
import sqlite3
from typing import Any

import gymnasium as gym

from envfactory_gym.actions import ParsedAction, ParsedCall, parse_action
from envfactory_gym.database import diff_digest
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.reward import CallRecord, RewardBreakdown, RewardConfig, compute_reward
from envfactory_gym.spaces import AnyText
from envfactory_gym.tasks import Task
from envfactory_gym.text import clip, quoted, valid_text
from envfactory_gym.tools import ArgumentError, ToolError
from envfactory_gym.users import ScriptedUser, UserSimulator, reset_user

MAX_TEXT = 1 << 20
"""Characters of an action that are read, and the bound of every observation."""
MAX_CALLS_PER_TURN = 16
MAX_TOOL_OUTPUT = 16_000
"""Characters of one tool result or error, and of one user reply."""
INVALID_CALL = "invalid_tool_call"
"""The function name recorded for a tool-call block that does not name a known tool."""
RESET_OPTIONS = ("task_id", "split")
EMPTY_MESSAGE = (
    "Error: your message was empty (nothing outside <think> blocks). Reply to the user in plain "
    "text, or call a tool."
)


class ToolUseEnv(gym.Env[str, str]):
    """A stateful tool-use episode: the user states a goal, the agent calls tools and answers.

    Action: the model's raw text (a `str`; anything else raises `TypeError`): Qwen3/Hermes
    `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks (at most 16 run per turn)
    and/or a message to the user; `<think>` blocks are dropped. The first `MAX_TEXT` characters
    are read.

    Observation: the text the agent must respond to next, valid UTF-8 and at most `MAX_TEXT`
    characters: the tool results (each in `<tool_response>`, each cut at 16,000 characters), the
    user's reply, or an error (a malformed call, an empty message) that costs a format penalty.

    Info (copies the caller may change; O(1) in the episode's length on every step): `task_id`,
    `turn`, and `new_messages`, the OpenAI-style chat messages this step added. `reset` gives
    `messages` (the conversation so far) and `tools` (the tool schemas); the step that ends the
    episode gives `messages` (the whole conversation), `reward_breakdown` and `success`.
    `conversation()` returns the whole conversation at any time. With `env.info_tools = False`
    the reset's `tools` is None (a worker of `EnvPool` leaves the copy to the process that
    receives the info, rather than copying, sending and copying again).

    Reward: 0 until the episode ends, then `RewardBreakdown.total` (see `envfactory_gym.reward`):
    0 for an episode that wrote any row the task does not expect to change.

    Episode end: `terminated` when the agent sends a message that the user does not answer (the
    final answer); `truncated` after `max_turns` agent turns.

    Arguments: `package` (an env package name, folder or `EnvPackage`), `split` (the default
    task split), `max_turns`, `reward_config` (a `RewardConfig` or a dict of overrides), `user`
    (a `UserSimulator`; scripted by default), `render_mode` (`"ansi"` or None).

    Pickling, `copy.deepcopy` and `cloudpickle` keep the episode: the copy replays the episode's
    successful calls on a fresh database and checks that it reached the same state.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}
    info_tools = True
    """Whether reset's info carries a copy of the tool schemas (else None); see the Info above."""

    def __init__(
        self,
        package: str | EnvPackage = "airline",
        *,
        split: str = "train",
        max_turns: int | None = None,
        reward_config: RewardConfig | dict[str, Any] | None = None,
        user: UserSimulator | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.package = package if isinstance(package, EnvPackage) else load_package(package)
        config = self.package.config
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}")
        self.render_mode = render_mode
        self.split = split
        self.package.tasks_for(split)
        self.max_turns = max_turns or config.max_turns
        if isinstance(reward_config, dict):
            reward_config = RewardConfig.model_validate(
                {**config.reward.model_dump(), **reward_config}
            )
        self.reward_config = reward_config or config.reward.model_copy()
        self.user = user or ScriptedUser(config.max_user_replies)
        self.observation_space = AnyText(MAX_TEXT)
        self.action_space = AnyText(MAX_TEXT)
        self.tools = self.package.tools
        self.system_prompt = self.package.system_prompt
        self.db = self.package.new_database()
        self.task: Task | None = None
        self.messages: list[dict[str, Any]] = []
        self.calls: list[CallRecord] = []
        self.said_to_user: list[str] = []
        self.turn = 0
        self.episodes = 0
        self.done = False
        self.last_reward: RewardBreakdown | None = None

    # ----- Gymnasium API ------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {unknown}; valid options: {', '.join(RESET_OPTIONS)}"
            )
        return self.reset_to(self._choose_task(options), seed=seed)

    def reset_to(self, task: Task, seed: int | None = None) -> tuple[str, dict[str, Any]]:
        """Start an episode on `task`, which need not be one of the package's tasks (the
        checker and the generators try drafts this way). `reset` ends here. `seed` goes to a
        user simulator whose `reset` takes one (an LLM user samples with it)."""
        self.task = task
        self.db.reset()
        reset_user(self.user, task, seed)
        self.messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": task.instruction},
        ]
        self.calls, self.said_to_user = [], []
        self.turn = 0
        self.done = False
        self.last_reward = None
        tools = self.tool_schemas if self.info_tools else None
        info = {"messages": self.conversation(), "tools": tools}
        info |= self._info(0)
        return task.instruction, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise gym.error.ResetNeeded("the episode is over: call reset()")
        if not isinstance(action, str):
            raise TypeError(
                f"an action is the model's raw text (str), got {type(action).__name__}; "
                "decode bytes first, and send tool calls as <tool_call> blocks in the text"
            )
        self.turn += 1
        logged = len(self.messages)
        parsed = parse_action(valid_text(action[:MAX_TEXT]), MAX_CALLS_PER_TURN)
        terminated = False
        if parsed.is_tool_turn:
            observation = self._tool_turn(parsed)
        elif not parsed.message:
            self.calls.append(CallRecord(None, None, ok=False, format_error=True))
            self.messages.append({"role": "assistant", "content": ""})
            self.messages.append({"role": "user", "content": EMPTY_MESSAGE})
            observation = EMPTY_MESSAGE
        else:
            self.messages.append({"role": "assistant", "content": parsed.message})
            self.said_to_user.append(parsed.message)
            reply = self.user.reply(parsed.message)
            if reply is None:
                terminated, observation = True, ""
            else:
                observation = clip(valid_text(reply), MAX_TOOL_OUTPUT)
                self.messages.append({"role": "user", "content": observation})
        truncated = not terminated and self.turn >= self.max_turns
        reward = 0.0
        info = self._info(logged)
        if terminated or truncated:
            self.done = True
            self.last_reward = self.score()
            self.episodes += 1
            reward = self.last_reward.total
            info["messages"] = self.conversation()
            info["reward_breakdown"] = self.last_reward.model_dump()
            info["success"] = self.last_reward.success
        return observation, reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        lines = []
        for message in self.messages:
            role = message["role"]
            text = message.get("content") or ""
            for call in message.get("tool_calls", []):
                fn = call["function"]
                text += f"\n-> {fn['name']}({json.dumps(fn['arguments'], ensure_ascii=False)})"
            label = f"tool[{message['name']}]" if role == "tool" else role
            lines.append(f"[{label}] {text.strip()}")
        if self.last_reward is not None:
            lines.append(f"[reward] {self.last_reward.total:.3f}")
        return "\n".join(lines) + "\n"

    def close(self) -> None:
        self.db.close()

    # ----- scoring and state --------------------------------------------------------------
    def score(self) -> RewardBreakdown:
        """Score the episode so far against the current task."""
        assert self.task is not None
        tau = self.reward_config.tau_at(self.episodes)
        diff, written = self.db.diff_and_written()
        return compute_reward(
            self.task, self.calls, self.said_to_user, diff, self.reward_config, tau, written
        )

    def state_digest(self) -> dict[str, str]:
        return self.db.state_digest()

    def diff(self) -> dict[str, Any]:
        return self.db.diff()

    # ----- internals ----------------------------------------------------------------------
    def _choose_task(self, options: dict[str, Any]) -> Task:
        if options.get("task_id") is not None:
            return self.package.task(str(options["task_id"]))
        tasks = self.package.tasks_for(options.get("split", self.split))
        if not tasks:
            raise ValueError(f"{self.package.config.gym_id} has no tasks in this split")
        return tasks[int(self.np_random.integers(len(tasks)))]

    def _tool_turn(self, parsed: ParsedAction) -> str:
        """Run the turn's calls in order; log them as one assistant message plus one tool message
        per call, every call with an id (malformed ones too) and every result answering one."""
        records, results = [], []
        for index, call in enumerate(parsed.calls):
            content, valid = self._run_call(call)
            name = call.name if call.name in self.tools else INVALID_CALL
            arguments = call.arguments if valid else {"raw": call.raw}
            records.append(
                {"id": f"call_{self.turn}_{index}", "type": "function",
                 "function": {"name": name, "arguments": arguments}}
            )  # fmt: skip
            results.append(content)
        if parsed.skipped:
            skipped = min(parsed.skipped, MAX_CALLS_PER_TURN)
            self.calls.extend([CallRecord(None, None, ok=False, format_error=True)] * skipped)
            results[-1] += (
                f"\nError: at most {MAX_CALLS_PER_TURN} tool calls run per turn; "
                f"{parsed.skipped} more were not run"
            )
        self.messages.append(
            {"role": "assistant", "content": parsed.message, "tool_calls": records}
        )
        for record, content in zip(records, results, strict=True):
            self.messages.append(
                {"role": "tool", "tool_call_id": record["id"],
                 "name": record["function"]["name"], "content": content}
            )  # fmt: skip
        if len(results) == 1:
            return f"<tool_response>\n{results[0]}\n</tool_response>"
        return "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in results)

    def _run_call(self, call: ParsedCall) -> tuple[str, bool]:
        """Execute one call in its own savepoint; every failure becomes an error observation.
        Returns the result text and whether the call was well-formed (known tool, valid
        arguments)."""
        if call.error is not None:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            return f"Error: {call.error}", False
        tool = self.tools.get(call.name or "")
        if tool is None:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            known = difflib.get_close_matches(call.name or "", list(self.tools), n=3)
            hint = f" Did you mean {', '.join(known)}?" if known else ""
            return clip(
                f"Error: unknown tool {quoted(call.name or '')}.{hint} "
                f"Available tools: {', '.join(self.tools)}",
                MAX_TOOL_OUTPUT,
            ), False
        try:
            arguments = tool.validate(call.arguments)
        except ArgumentError as exc:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            return clip(f"Error: {exc}", MAX_TOOL_OUTPUT), False
        try:
            if tool.kind == "write":
                with self.db.call():
                    outcome, ok = _to_text(tool(self.db, **arguments)), True
            else:  # a read needs no savepoint; the guard catches one that writes anyway
                changes = self.db.total_changes
                outcome, ok = _to_text(tool(self.db, **arguments)), True
                if self.db.total_changes != changes:
                    raise ToolError(
                        f"{tool.name} is declared kind={tool.kind!r} but changed the database; "
                        "a tool that writes must be declared @tool(kind='write')"
                    )
        except ToolError as exc:
            outcome, ok = f"Error: {exc}", False
        except sqlite3.IntegrityError as exc:
            outcome, ok = f"Error: the change was refused by the database ({exc})", False
        except Exception as exc:  # a bug in a tool must not crash a training run
            outcome, ok = f"Error: {call.name} failed ({type(exc).__name__}: {exc})", False
        self.calls.append(CallRecord(call.name, arguments, ok=ok, format_error=False))
        return clip(valid_text(outcome), MAX_TOOL_OUTPUT), True

    def _info(self, since: int) -> dict[str, Any]:
        """The per-step info: the messages logged from index `since` on, task id and turn."""
        assert self.task is not None
        return {
            "new_messages": [_copy_message(m) for m in self.messages[since:]],
            "task_id": self.task.id,
            "turn": self.turn,
        }

    def conversation(self) -> list[dict[str, Any]]:
        """The whole conversation so far as OpenAI-style chat: a copy the caller may change."""
        return [_copy_message(m) for m in self.messages]

    @property
    def tool_schemas(self) -> list[dict[str, Any]]:
        """The tool schemas (OpenAI function format): a fresh copy on every access."""
        return self.package.copy_tool_schemas()

    # ----- pickling -----------------------------------------------------------------------
    def _fingerprint(self) -> tuple[str, list[tuple[str, str]]]:
        """What a pickled copy must reproduce: the episode's diff and the rows it wrote."""
        diff, written = self.db.diff_and_written()
        return diff_digest(diff), sorted(written)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("db", "tools")}
        state["_state_check"] = self._fingerprint()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        expected = state.pop("_state_check")
        self.__dict__.update(state)
        self.tools = self.package.tools
        self.db = self.package.new_database()
        for record in self.calls:  # failed calls rolled back: only successful ones changed state
            if record.ok:
                with self.db.call():
                    self.tools[record.name](self.db, **record.arguments)
        if self._fingerprint() != expected:
            raise RuntimeError(
                f"{self.package.config.gym_id}: replaying the episode's calls did not reproduce "
                "its database state; a tool is not deterministic"
            )


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars), much faster than copy.deepcopy:
    scalars are shared, only containers are copied."""
    if isinstance(value, dict):
        return {k: v if type(v) in _SCALARS else _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [v if type(v) in _SCALARS else _copy_json(v) for v in value]
    return value


def _copy_message(message: dict[str, Any]) -> dict[str, Any]:
    copied = message.copy()
    if "tool_calls" in message:
        copied["tool_calls"] = [
            {"id": c["id"], "type": c["type"],
             "function": {"name": c["function"]["name"],
                          "arguments": _copy_json(c["function"]["arguments"])}}
            for c in message["tool_calls"]
        ]  # fmt: skip
    return copied


def _to_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
