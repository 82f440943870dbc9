"""`ToolUseEnv`: one Gymnasium environment over an env package, text in and text out."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.error import CustomSpaceError
from gymnasium.vector.utils.shared_memory import create_shared_memory

from envfactory_gym.actions import ParsedCall, parse_action
from envfactory_gym.database import Database
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.reward import CallRecord, RewardBreakdown, RewardConfig, compute_reward
from envfactory_gym.tasks import Task
from envfactory_gym.tools import ArgumentError, ToolError
from envfactory_gym.users import ScriptedUser, UserSimulator

MAX_TEXT = 1 << 20
MAX_CALLS_PER_TURN = 16
MAX_TOOL_OUTPUT = 16_000


class AnyText(spaces.Text):
    """A text space holding any string up to `max_length`; samples printable ASCII."""

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(max_length, min_length=0, charset=_PRINTABLE, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, AnyText) and other.max_length == self.max_length


_PRINTABLE = "".join(chr(c) for c in range(32, 127)) + "\n"


@create_shared_memory.register(AnyText)
def _no_shared_memory(space: AnyText, n: int = 1, ctx: Any = None) -> Any:
    raise CustomSpaceError(
        "envfactory observations are arbitrary text, which gymnasium's shared memory cannot hold: "
        "use gym.make_vec(..., vectorization_mode='async', vector_kwargs={'shared_memory': False})"
    )


class ToolUseEnv(gym.Env[str, str]):
    """A stateful tool-use episode: the user states a goal, the agent calls tools and answers.

    Observation: the text the agent must respond to next (the user's message or the tool
    results). Action: the model's raw text, with Qwen3/Hermes `<tool_call>` blocks and/or a
    message to the user. `info["messages"]` is the conversation in OpenAI chat format and
    `info["tools"]` the tool schemas. The reward is sparse, at the end of the episode.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 1}

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
        self.tool_schemas = self.package.tool_schemas
        self.system_prompt = _system_prompt(self.package)
        self.db = Database(self.package.template)
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
        self.task = self._choose_task(options)
        self.db.reset()
        self.user.reset(self.task)
        self.messages = [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": self.task.instruction},
        ]
        self.calls, self.said_to_user = [], []
        self.turn = 0
        self.done = False
        self.last_reward = None
        return self.task.instruction, self._info()

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.task is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.done:
            raise gym.error.ResetNeeded("the episode is over: call reset()")
        self.turn += 1
        parsed = parse_action(action)
        terminated = False
        if parsed.is_tool_turn:
            calls = parsed.calls[:MAX_CALLS_PER_TURN]
            ids = [f"call_{self.turn}_{i}" for i in range(len(calls))]
            self.messages.append(_assistant_message(parsed.message, calls, ids))
            results = [self._run_call(call) for call in calls]
            for call, call_id, content in zip(calls, ids, results, strict=True):
                self.messages.append(
                    {"role": "tool", "tool_call_id": call_id, "name": call.name or "error",
                     "content": content}
                )  # fmt: skip
            if len(parsed.calls) > len(calls):
                skipped = len(parsed.calls) - len(calls)
                self.calls.extend([CallRecord(None, None, ok=False, format_error=True)] * skipped)
                results.append(
                    f"Error: at most {MAX_CALLS_PER_TURN} tool calls per turn; "
                    f"{skipped} more were not run"
                )
                self.messages.append({"role": "tool", "name": "error", "content": results[-1]})
            observation = "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in results)
        else:
            self.messages.append({"role": "assistant", "content": parsed.message})
            self.said_to_user.append(parsed.message)
            reply = self.user.reply(parsed.message)
            if reply is None:
                terminated, observation = True, ""
            else:
                self.messages.append({"role": "user", "content": reply})
                observation = reply
        truncated = not terminated and self.turn >= self.max_turns
        reward = 0.0
        info = self._info()
        if terminated or truncated:
            self.done = True
            self.last_reward = self.score()
            self.episodes += 1
            reward = self.last_reward.total
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
        return compute_reward(
            self.task, self.calls, self.said_to_user, self.db.diff(), self.reward_config, tau
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

    def _run_call(self, call: ParsedCall) -> str:
        """Execute one call in its own savepoint; every failure becomes an error observation."""
        if call.error is not None:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            return f"Error: {call.error}"
        tool = self.tools.get(call.name or "")
        if tool is None:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            return f"Error: unknown tool {call.name!r}. Available tools: {', '.join(self.tools)}"
        try:
            arguments = tool.validate(call.arguments)
        except ArgumentError as exc:
            self.calls.append(CallRecord(call.name, call.arguments, ok=False, format_error=True))
            return f"Error: {exc}"
        try:
            with self.db.call():
                outcome, ok = _to_text(tool(self.db, **arguments)), True
        except ToolError as exc:
            outcome, ok = f"Error: {exc}", False
        except sqlite3.IntegrityError as exc:
            outcome, ok = f"Error: the change was refused by the database ({exc})", False
        except Exception as exc:  # a bug in a tool must not crash a training run
            outcome, ok = f"Error: {call.name} failed ({type(exc).__name__}: {exc})", False
        if len(outcome) > MAX_TOOL_OUTPUT:
            cut = len(outcome) - MAX_TOOL_OUTPUT
            outcome = outcome[:MAX_TOOL_OUTPUT] + f"... [{cut} more characters cut]"
        self.calls.append(CallRecord(call.name, arguments, ok=ok, format_error=False))
        return outcome

    def _info(self) -> dict[str, Any]:
        assert self.task is not None
        return {
            "messages": list(self.messages),
            "tools": self.tool_schemas,
            "task_id": self.task.id,
            "turn": self.turn,
        }


def _assistant_message(text: str, calls: list[ParsedCall], ids: list[str]) -> dict[str, Any]:
    """The assistant turn in chat format; malformed blocks stay in the content as written."""
    malformed = "".join(f"<tool_call>{c.raw}</tool_call>" for c in calls if c.error is not None)
    return {
        "role": "assistant",
        "content": text + ("\n" if text and malformed else "") + malformed,
        "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c, call_id in zip(calls, ids, strict=True)
            if c.error is None
        ],
    }  # fmt: skip


def _to_text(result: Any) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _system_prompt(package: EnvPackage) -> str:
    config = package.config
    return (
        f"You are a customer service agent for {config.description}\n"
        "Use the tools to look things up and make changes; follow the policy below exactly. "
        "Reply to the user in plain text when you need information from them or when you are "
        "done.\n\n"
        f"# Policy\n\n{package.policy.strip()}\n"
    )
