"""Play an env in the terminal: a person as the agent (`envfactory play ENV`), or as the user
against an agent (`envfactory play ENV --as user --agent SPEC`).

As the agent, each line typed is one turn:

- `name(arg=value, ...)` or `{"name": ..., "arguments": {...}}`: a tool call (values are Python
  or JSON literals: 'text', 3, 4.5, True, ["a", "b"], {"k": 1});
- `/tools`: the tools with their arguments; `/task`: the user's request again; `/quit`: stop;
- anything else: a message to the user (a message without a question ends the episode).

The reward and its breakdown are shown at the end.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from typing import Any, TextIO

import gymnasium as gym

from envfactory_gym.actions import format_tool_call
from envfactory_gym.tasks import Task


class PlayError(ValueError):
    """A typed line that looks like a tool call but cannot be read as one."""


def parse_line(line: str, tool_names: set[str]) -> str:
    """The action text for one typed line: a `<tool_call>` block or the message itself."""
    text = line.strip()
    if text.startswith("{"):
        try:
            call = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlayError(f"not valid JSON: {exc.msg}") from None
        if not isinstance(call, dict) or "name" not in call:
            raise PlayError('a JSON call is {"name": ..., "arguments": {...}}')
        return format_tool_call(str(call["name"]), call.get("arguments") or {})
    looks_like_call = re.match(r"[A-Za-z_]\w*\(", text)  # name( with no space: a call
    name = text.split("(", 1)[0]
    if looks_like_call and name not in tool_names:
        raise PlayError(f"no tool {name!r}; /tools lists them")
    if looks_like_call:
        if not text.endswith(")"):
            raise PlayError("a call ends with ')'")
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise PlayError(f"cannot read the call: {exc.msg}") from None
        if not isinstance(node, ast.Call) or node.args:
            raise PlayError("name the arguments: tool(arg=value, ...)")
        try:
            arguments = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except ValueError:
            raise PlayError(
                "argument values must be literals: 'text', 3, True, [..], {..}"
            ) from None
        return format_tool_call(name, arguments)
    return text


def describe_tools(tools: list[dict[str, Any]]) -> str:
    """One line per tool: `name(arg: type, optional?: type)  description`."""
    lines = []
    for schema in tools:
        function = schema["function"]
        params = function["parameters"]
        required = set(params.get("required", []))
        args = ", ".join(
            f"{name}{'' if name in required else '?'}: {_type(prop)}"
            for name, prop in params.get("properties", {}).items()
        )
        lines.append(f"  {function['name']}({args})  {function['description'][:70]}")
    return "\n".join(lines)


def _type(prop: dict[str, Any]) -> str:
    if "enum" in prop:
        return "|".join(str(v) for v in prop["enum"])
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    return str(prop.get("type", "any"))


def play_as_agent(
    env_id: str, task_id: str | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout
) -> float:
    """A person types the agent's turns; returns the episode's reward."""
    env = gym.make(env_id)
    options = {"task_id": task_id} if task_id else {"split": "test"}
    obs, info = env.reset(seed=0, options=options)
    tools = info["tools"]
    names = {t["function"]["name"] for t in tools}
    task: Task = env.unwrapped.task
    write = stdout.write
    write(f"{env_id}, task {task.id} ({task.kind}). Type /tools for the tools, /quit to stop.\n")
    write(f"\nuser: {obs}\n")
    reward, info = 0.0, {}
    while True:
        write("\nyou> ")
        stdout.flush()
        line = stdin.readline()
        if not line or line.strip() == "/quit":
            write("\n(stopped)\n")
            env.close()
            return 0.0
        if not line.strip():
            continue
        if line.strip() == "/tools":
            write(describe_tools(tools) + "\n")
            continue
        if line.strip() == "/task":
            write(f"user: {task.instruction}\n")
            continue
        try:
            action = parse_line(line, names)
        except PlayError as exc:
            write(f"(not sent: {exc})\n")
            continue
        obs, reward, terminated, truncated, info = env.step(action)
        if obs:
            write(("tool: " if action.startswith("<tool_call>") else "user: ") + obs + "\n")
        if terminated or truncated:
            break
    breakdown = info["reward_breakdown"]
    write(
        f"\nreward {reward:.3f} (trace {breakdown['trace']:.2f}, state {breakdown['state']:.0f}, "
        f"outputs {breakdown['outputs']:.2f}, penalty {breakdown['penalty']:.2f})"
        f"{'; rows written that the task does not expect: ' if breakdown['violations'] else ''}"
        f"{', '.join(breakdown['violations'])}\n"
    )
    env.close()
    return float(reward)


class TerminalUser:
    """A person typing the user's replies (the `UserSimulator` protocol); an empty line ends
    the conversation."""

    def __init__(self, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> None:
        self.stdin, self.stdout = stdin, stdout

    def reset(self, task: Task) -> None:
        self.stdout.write(f"(you know: {json.dumps(task.user_facts)})\n")

    def reply(self, agent_message: str) -> str | None:
        self.stdout.write(f"\nagent: {agent_message}\nyou (empty line ends)> ")
        self.stdout.flush()
        line = self.stdin.readline().strip()
        return line or None


def play_as_user(
    env_id: str,
    agent: Any,
    task_id: str | None = None,
    stdin: TextIO = sys.stdin,
    stdout: TextIO = sys.stdout,
) -> float:
    """A person answers as the user while `agent` acts; returns the episode's reward."""
    env = gym.make(env_id, user=TerminalUser(stdin, stdout))
    options = {"task_id": task_id} if task_id else {"split": "test"}
    obs, info = env.reset(seed=0, options=options)
    stdout.write(f"{env_id}, task {env.unwrapped.task.id}. You opened with:\n  {obs}\n")
    agent.reset(env.unwrapped.task)
    messages, tools = info["messages"], info["tools"]
    reward, done = 0.0, False
    while not done:
        action = agent.act(messages, tools)
        if action.startswith("<tool_call>"):
            stdout.write(f"(agent calls a tool: {action.splitlines()[1][:120]})\n")
        obs, reward, terminated, truncated, info = env.step(action)
        messages.extend(info["new_messages"])
        done = terminated or truncated
    stdout.write(f"\nreward {reward:.3f}\n")
    env.close()
    return float(reward)
