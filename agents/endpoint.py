"""An agent served by any OpenAI-compatible `/v1/chat/completions` server (vLLM, SGLang,
`transformers serve`, a hosted API), through the `openai` client.

Two modes:

- native tool calling (the default): the tool schemas go as `tools=`, the conversation's tool
  calls and results as the API's `tool_calls` and `tool` messages, and the `tool_calls` the
  server returns become `<tool_call>` text for the env to parse. The server must parse its
  model's tool calls (vLLM: `--enable-auto-tool-choice --tool-call-parser hermes`).
- text mode (`tool_mode="text"`): no `tools=`; the tools are described in the system message
  in the Qwen3/Hermes format, earlier calls and results are written as `<tool_call>` and
  `<tool_response>` text, and the completion's raw text is the action. For servers without
  tool-call parsing, or to see exactly what the model wrote. A server that parses tool calls
  anyway (`transformers serve` does for Qwen3) has them turned back into `<tool_call>` text.

The API key comes from an environment variable (`OPENAI_API_KEY` by default; local servers
accept any key). Token usage reported by the server adds up in `last_episode_tokens`.
"""

from __future__ import annotations

import json
import os
from typing import Any

from envfactory_gym.actions import format_tool_call
from envfactory_gym.agents.hf import derive_seed
from envfactory_gym.tasks import Task

TOOL_MODES = ("native", "text")
LOCAL_API_KEY = "EMPTY"
"""The key sent when the key variable is unset (local servers ignore it)."""

_TOOLS_HEADER = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
_TOOLS_FOOTER = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


class EndpointError(RuntimeError):
    """The server could not be reached or answered with an error; the message names the URL."""


class EndpointAgent:
    """A model behind an OpenAI-compatible chat-completions server.

    Args:
        model: the model name the server knows (`transformers serve` takes a folder path).
        base_url: the API root, e.g. `http://127.0.0.1:8000/v1`.
        tool_mode: "native" (tools through the API) or "text" (tools and calls as text).
        temperature: sampling temperature; 0 asks for greedy decoding.
        top_p: nucleus sampling's top_p (sent only when below 1).
        max_tokens: the longest completion of one turn.
        seed: the request seed when `reset` gets none; each turn sends a seed derived from the
            episode's seed and the turn, so a server that honours seeds repeats episodes.
        api_key_env: the environment variable holding the API key.
        timeout: seconds to wait for one response.
        max_retries: the client's retries of failed connections and 5xx/429 answers.
        extra_body: more JSON fields for every request (e.g. `chat_template_kwargs`).
    """

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        tool_mode: str = "native",
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 512,
        seed: int = 0,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 2,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        if tool_mode not in TOOL_MODES:
            raise ValueError(f"tool_mode must be one of {', '.join(TOOL_MODES)}, not {tool_mode!r}")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, not {base_url!r}")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.tool_mode = tool_mode
        self.temperature = temperature
        self.top_p = top_p
        self.max_tokens = max_tokens
        self.seed = seed
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = dict(extra_body or {})
        self.episode_seed = seed
        self.turn = 0
        self.last_episode_tokens = 0
        self.last_episode_prompt_tokens = 0
        self.last_episode_completion_tokens = 0
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The `openai.OpenAI` client (built on first use, so the agent pickles)."""
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as exc:
                raise ImportError(
                    "EndpointAgent needs the openai client: pip install 'envfactory-gym[llm]'"
                ) from exc
            self._client = OpenAI(
                base_url=self.base_url,
                api_key=os.environ.get(self.api_key_env) or LOCAL_API_KEY,
                timeout=self.timeout,
                max_retries=self.max_retries,
            )
        return self._client

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_client": None}

    # ----- the agent protocol ---------------------------------------------------------------
    def reset(self, task: Task | None = None, seed: int | None = None) -> None:
        """Start an episode: token counts to zero, request seeds derived from `seed`."""
        self.episode_seed = self.seed if seed is None else seed
        self.turn = 0
        self.last_episode_tokens = 0
        self.last_episode_prompt_tokens = 0
        self.last_episode_completion_tokens = 0

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        """Ask the server for the next assistant turn; return it as action text."""
        request: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "seed": derive_seed(self.episode_seed, self.turn),
        }
        if self.top_p < 1:
            request["top_p"] = self.top_p
        if self.extra_body:
            request["extra_body"] = self.extra_body
        if self.tool_mode == "native":
            request["messages"] = api_messages(messages)
            if tools:
                request["tools"] = tools
        else:
            request["messages"] = text_messages(messages, tools)
        response = self._create(request)
        self.turn += 1
        if response.usage is not None:
            prompt = response.usage.prompt_tokens or 0
            completion = response.usage.completion_tokens or 0
            self.last_episode_prompt_tokens += prompt
            self.last_episode_completion_tokens += completion
            self.last_episode_tokens += prompt + completion
        if not response.choices:
            raise EndpointError(f"{self.base_url} answered with no choices for {self.model!r}")
        return action_text(response.choices[0].message)

    def _create(self, request: dict[str, Any]) -> Any:
        import openai

        url = f"{self.base_url}/chat/completions"
        try:
            return self.client.chat.completions.create(**request)
        except openai.APITimeoutError as exc:
            raise EndpointError(
                f"{url} did not answer within {self.timeout:g} s (model {self.model!r})"
            ) from exc
        except openai.APIConnectionError as exc:
            raise EndpointError(
                f"cannot reach {url}: is an OpenAI-compatible server running there? ({exc})"
            ) from exc
        except openai.APIStatusError as exc:
            raise EndpointError(
                f"{url} answered HTTP {exc.status_code} for model {self.model!r}: "
                f"{_short(exc.message)}"
            ) from exc

    def __repr__(self) -> str:
        return f"EndpointAgent({self.model!r} @ {self.base_url}, tool_mode={self.tool_mode!r})"


# ----- conversions ----------------------------------------------------------------------------
def api_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Our conversation as the chat-completions API expects it: tool-call arguments as JSON
    strings, an assistant turn of only calls with `content: null`, tool results with their
    `tool_call_id`."""
    converted = []
    for message in messages:
        role = message["role"]
        if role == "assistant" and message.get("tool_calls"):
            converted.append(
                {
                    "role": "assistant",
                    "content": message.get("content") or None,
                    "tool_calls": [
                        {
                            "id": call["id"],
                            "type": "function",
                            "function": {
                                "name": call["function"]["name"],
                                "arguments": _arguments_json(call["function"]["arguments"]),
                            },
                        }
                        for call in message["tool_calls"]
                    ],
                }
            )
        elif role == "tool":
            converted.append(
                {
                    "role": "tool",
                    "tool_call_id": message["tool_call_id"],
                    "content": message.get("content") or "",
                }
            )
        else:
            converted.append({"role": role, "content": message.get("content") or ""})
    return converted


def text_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Our conversation as plain system/user/assistant text, the Qwen3/Hermes way: the tools
    described in the system message, calls as `<tool_call>` blocks in the assistant's text, and
    each run of tool results as one user message of `<tool_response>` blocks."""
    converted: list[dict[str, Any]] = []
    tool_text = tools_prompt(tools) if tools else ""
    if tool_text and (not messages or messages[0]["role"] != "system"):
        converted.append({"role": "system", "content": tool_text})
    for index, message in enumerate(messages):
        role, content = message["role"], message.get("content") or ""
        if role == "system" and index == 0 and tool_text:
            converted.append({"role": "system", "content": f"{content}\n\n{tool_text}"})
        elif role == "assistant" and message.get("tool_calls"):
            blocks = [_call_text(call["function"]) for call in message["tool_calls"]]
            text = "\n".join([content, *blocks] if content else blocks)
            converted.append({"role": "assistant", "content": text})
        elif role == "tool":
            block = f"<tool_response>\n{content}\n</tool_response>"
            previous = converted[-1] if converted else None
            if previous and previous.get("_tool_results"):
                previous["content"] += "\n" + block
            else:
                converted.append({"role": "user", "content": block, "_tool_results": True})
        else:
            converted.append({"role": role, "content": content})
    for message in converted:
        message.pop("_tool_results", None)
    return converted


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The tool schemas as the Qwen3 chat template writes them into the system message."""
    schemas = "".join("\n" + json.dumps(tool, ensure_ascii=False) for tool in tools)
    return _TOOLS_HEADER + schemas + _TOOLS_FOOTER


def action_text(message: Any) -> str:
    """A returned chat message as action text: its content, then each tool call the server
    parsed out as a `<tool_call>` block (arguments that are not JSON are passed on as text, so
    the env reports the malformed call)."""
    parts = [message.content] if message.content else []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        try:
            arguments = json.loads(function.arguments or "{}")
        except json.JSONDecodeError:
            parts.append(
                f'<tool_call>\n{{"name": {json.dumps(function.name)}, '
                f'"arguments": {function.arguments}}}\n</tool_call>'
            )
            continue
        parts.append(format_tool_call(function.name, arguments))
    return "\n".join(parts)


def _call_text(function: dict[str, Any]) -> str:
    """One call as the Qwen3 template renders it in an assistant turn."""
    arguments = _arguments_json(function["arguments"])
    return f'<tool_call>\n{{"name": "{function["name"]}", "arguments": {arguments}}}\n</tool_call>'


def _arguments_json(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
