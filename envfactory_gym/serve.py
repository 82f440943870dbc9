"""`envfactory serve`: any env over MCP, one isolated database per client session.

    envfactory serve envfactory/Airline-v0 --transport http --port 8000
    envfactory serve envfactory/Airline-v0 --transport stdio

Two surfaces, two servers, both built with the official `mcp` SDK (the `mcp` extra):

* **Policy** (`--transport stdio`, or streamable HTTP at `http://HOST:PORT/mcp`): the env's tools
  and nothing else. `tools/list` returns each tool's JSON schema exactly as the env states it
  (`package.tool_schemas`: enums, bounds, nested objects, `additionalProperties`), handed to the
  SDK's low-level `Server` as is, never re-derived from Python signatures. Each MCP session owns
  one `ToolUseEnv` (its own in-memory copy of the database); a `tools/call` is sent through
  `env.step` as the Qwen3/Hermes `<tool_call>` text a policy would write, so argument validation,
  the per-call SAVEPOINT, format penalties, the turn limit and the reward bookkeeping are the
  runtime's own. The server's `instructions` carry the env's policy.
* **Control** (streamable HTTP on loopback, `--admin-port`, every request needs
  `Authorization: Bearer TOKEN`): the episode. Its tools `sessions`, `tasks`, `reset`, `step`
  (the policy's turn that is not a tool call, usually its message to the user), `reward` and
  `conversation` each name the policy session they act on.

Why a separate server rather than MCP resources or prompts on the policy server: whatever a
session exposes, a generic MCP host may show to the model (several hosts turn resources and
prompts into things the model can request), and the reward breakdown names the rows and answers
the task expects, so reading it is reward hacking. On a separate port, behind a token the
policy's client never holds, episode control cannot be reached by accident or on purpose; the
policy's connection lists the env's tools and has nothing else to call. The harness holds both
clients: `policy_client(url)` yields the SDK `Client` and its session id, `ControlClient` makes
the control calls.

Sessions: over HTTP, the MCP session id (`Mcp-Session-Id`) is the key; a session's env is made
when the `initialize` response assigns the id, and dropped when the client deletes the session,
the SDK forgets it (404), or it is idle for `--session-timeout` seconds. Over stdio the one
connection is the session `"stdio"`. A new session starts on `--task` (or a task drawn with
`--seed` from `--split`), so a plain MCP client can use the tools at once; the control surface
picks the task with `reset`.

Protocol era: the MCP 2026-07-28 revision removed protocol sessions (each request stands alone),
and an episode is per-session state, so over HTTP the policy server speaks the handshake era
(2025-11-25 and earlier) and says so in `server/discover`; SDK clients in `mode="auto"` (the
default) fall back to the `initialize` handshake by themselves, as they do for the Go SDK's
stateful servers, and a client pinned to 2026-07-28 gets a clear error. Over stdio the process is
the session, so both eras work. The control server is stateless and speaks both eras.

`import envfactory_gym.serve` does not import `mcp`; serving without it raises an `ImportError`
that names the `mcp` extra.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import inspect
import json
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from envfactory_gym.actions import format_tool_call
from envfactory_gym.env import ToolUseEnv
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.registry import package_name

if TYPE_CHECKING:
    from mcp import Client

MCP_EXTRA = 'pip install "envfactory-gym[mcp]"'
STDIO_SESSION = "stdio"
"""The session id of the one connection a stdio server has."""
SESSION_HEADER = "mcp-session-id"
TOKEN_ENV = "ENVFACTORY_CONTROL_TOKEN"
"""The environment variable a control token is read from when `--admin-token` is not given."""
MCP_PATH = "/mcp"
Split = Literal["train", "test", "all"]

ASGIApp = Callable[[dict[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]],
                   Awaitable[None]]  # fmt: skip


def require_mcp() -> None:
    """Import the MCP SDK or raise an `ImportError` that says how to install it."""
    try:
        import mcp  # noqa: F401
        from mcp.server.lowlevel import Server  # noqa: F401
        from mcp.server.mcpserver import MCPServer  # noqa: F401  (mcp 2.x)
    except ImportError as exc:
        raise ImportError(
            f"serving over MCP needs the official MCP SDK, version 2 (mcp>=2.0,<3): {MCP_EXTRA} "
            f"({exc})"
        ) from exc


# ----- episodes: one env per session ------------------------------------------------------------
@dataclass
class Episode:
    """One session's env and when it was last used."""

    env: ToolUseEnv
    last_used: float = field(default_factory=time.monotonic)


class Episodes:
    """The live sessions' envs, keyed by session id; all envs share one loaded package.

    Every method is synchronous and runs on the server's event loop, so calls from different
    sessions interleave only between env steps, never inside one.
    """

    def __init__(
        self,
        package: EnvPackage,
        *,
        split: str = "train",
        max_turns: int | None = None,
        task: str | None = None,
        seed: int = 0,
        idle_timeout: float | None = None,
    ) -> None:
        self.package = package
        self.split = split
        self.max_turns = max_turns
        self.task = task
        self.seed = seed
        self.idle_timeout = idle_timeout
        self.live: dict[str, Episode] = {}
        if task is not None:
            package.task(task)  # an unknown task fails at start, with close matches named

    def open(self, session: str) -> Episode:
        """Make the session's env and start its first episode (`--task`, or drawn by seed)."""
        self.reap()
        if session in self.live:
            return self.live[session]
        env = ToolUseEnv(self.package, split=self.split, max_turns=self.max_turns)
        options = {"task_id": self.task} if self.task else None
        env.reset(seed=self.seed, options=options)
        episode = self.live[session] = Episode(env)
        return episode

    def get(self, session: str) -> Episode:
        """The session's episode; `KeyError` naming the live sessions when it has none."""
        episode = self.live.get(session)
        if episode is None:
            known = ", ".join(sorted(self.live)[:10]) or "none"
            raise KeyError(
                f"no live MCP session {session!r} (live sessions: {known}); a session ends when "
                "its client disconnects or after the idle timeout"
            )
        episode.last_used = time.monotonic()
        return episode

    def close(self, session: str) -> None:
        episode = self.live.pop(session, None)
        if episode is not None:
            episode.env.close()

    def reap(self) -> None:
        """Drop the envs of sessions idle longer than the timeout (clients that vanished)."""
        if self.idle_timeout is None:
            return
        cutoff = time.monotonic() - self.idle_timeout
        for session in [s for s, e in self.live.items() if e.last_used < cutoff]:
            self.close(session)

    def close_all(self) -> None:
        for session in list(self.live):
            self.close(session)


def run_tool_call(env: ToolUseEnv, name: str, arguments: dict[str, Any] | None) -> tuple[str, bool]:
    """Run one tool call through the env's action path; return its result text and whether it
    failed. An episode that is over (final answer given, or the turn limit reached) refuses."""
    if env.done:
        return (
            "Error: the episode is over (final answer given or turn limit reached); the "
            "controller starts the next one with reset",
            True,
        )
    env.step(format_tool_call(name, arguments if arguments is not None else {}))
    result = env.messages[-1]
    record = env.calls[-1]
    return str(result.get("content", "")), not record.ok


# ----- the policy server ---------------------------------------------------------------------
def policy_server(episodes: Episodes, *, stdio: bool) -> Any:
    """The policy's MCP server: the env's tools with their schemas as the env states them."""
    require_mcp()
    import mcp_types as types
    from mcp.server.lowlevel import Server
    from mcp.shared.exceptions import MCPError
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    package = episodes.package
    tools = [
        types.Tool(
            name=schema["function"]["name"],
            description=schema["function"]["description"],
            input_schema=schema["function"]["parameters"],
        )
        for schema in package.tool_schemas
    ]

    def session_of(ctx: Any) -> str:
        if stdio:
            return STDIO_SESSION
        request = getattr(ctx, "request", None)
        session = request.headers.get(SESSION_HEADER) if request is not None else None
        if not session:
            raise MCPError(
                types.INVALID_REQUEST,
                "this server keeps one episode per MCP session, and the 2026-07-28 protocol has "
                "no sessions: connect with the initialize handshake (mcp.Client(url) in its "
                "default mode='auto', or mode='legacy')",
            )
        return session

    async def list_tools(ctx: Any, params: Any) -> Any:
        return types.ListToolsResult(tools=[tool.model_copy(deep=True) for tool in tools])

    async def call_tool(ctx: Any, params: Any) -> Any:
        try:
            episode = episodes.get(session_of(ctx))
        except KeyError as exc:
            raise MCPError(types.INVALID_REQUEST, str(exc.args[0])) from None
        text, failed = run_tool_call(episode.env, params.name, params.arguments)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=failed
        )

    async def discover(ctx: Any, params: Any) -> Any:
        # Handshake versions only: per-session state needs the session the handshake makes.
        return types.DiscoverResult(
            supported_versions=list(HANDSHAKE_PROTOCOL_VERSIONS),
            capabilities=server.get_capabilities(),
            instructions=server.instructions,
        )

    config = package.config
    server: Any = Server(
        f"envfactory-{package.name}",
        version=_version(),
        title=f"{config.gym_id} tools",
        instructions=f"Tools of {config.description}\n\n# Policy\n\n{package.policy.strip()}\n",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )
    if not stdio:  # over stdio the one connection is the session, in either era
        server.add_request_handler("server/discover", types.RequestParams, discover)
    return server


# ----- the control server --------------------------------------------------------------------
def _status(session: str, env: ToolUseEnv) -> dict[str, Any]:
    return {
        "session": session,
        "task_id": env.task.id if env.task else None,
        "turn": env.turn,
        "max_turns": env.max_turns,
        "done": env.done,
        "episodes": env.episodes,
    }


def control_server(episodes: Episodes) -> Any:
    """The control MCP server: episode control for the harness, never for the policy."""
    require_mcp()
    from mcp.server.mcpserver import MCPServer

    package = episodes.package
    control = MCPServer(
        f"envfactory-{package.name}-control",
        instructions=f"Episode control for {package.config.gym_id}: for the training or "
        "evaluation harness, never for the policy. Every tool names a policy session (the "
        f"policy connection's Mcp-Session-Id; {STDIO_SESSION!r} over stdio).",
    )

    @control.tool()
    def sessions() -> list[dict[str, Any]]:
        """The live policy sessions: task, turn, whether the episode is over."""
        episodes.reap()
        return [_status(s, e.env) for s, e in sorted(episodes.live.items())]

    @control.tool()
    def tasks(split: Split = "all") -> list[dict[str, Any]]:
        """The env's tasks (id, split, kind, the user's opening message)."""
        return [
            {"id": t.id, "split": t.split, "kind": t.kind, "instruction": t.instruction}
            for t in package.tasks_for(split)
        ]

    @control.tool()
    def reset(
        session: str,
        task_id: str | None = None,
        split: Split | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Start a new episode in a policy session: on task_id, else a task of split drawn with
        seed. Returns the user's opening message as `observation`."""
        env = episodes.get(session).env
        options: dict[str, Any] = {}
        if task_id is not None:
            options["task_id"] = task_id
        if split is not None:
            options["split"] = split
        observation, _ = env.reset(seed=seed, options=options)
        return {**_status(session, env), "observation": observation}

    @control.tool()
    def step(session: str, action: str) -> dict[str, Any]:
        """Send the policy's turn that is not an MCP tool call (its message to the user, as raw
        text) through env.step. Returns the user's reply as `observation`; when the episode
        ends, `reward` and `reward_breakdown`."""
        env = episodes.get(session).env
        if env.done:
            raise ValueError("the episode is over: reset it first")
        observation, reward, terminated, truncated, info = env.step(action)
        result = {
            **_status(session, env),
            "observation": observation,
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
        }
        if "reward_breakdown" in info:
            result["reward_breakdown"] = info["reward_breakdown"]
        return result

    @control.tool()
    def reward(session: str) -> dict[str, Any]:
        """The episode's reward and its breakdown: final once the episode is over, else what it
        would score if it ended now (`final` false)."""
        env = episodes.get(session).env
        breakdown = env.last_reward if env.done and env.last_reward else env.score()
        return {
            **_status(session, env),
            "final": env.done,
            "reward": breakdown.total,
            "reward_breakdown": breakdown.model_dump(),
        }

    @control.tool()
    def conversation(session: str) -> list[dict[str, Any]]:
        """The episode so far as OpenAI-style chat messages (system prompt first)."""
        return episodes.get(session).env.conversation()

    return control


class BearerToken:
    """ASGI middleware: every HTTP request needs `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = _header(scope, b"authorization") or b""
            if not hmac.compare_digest(given, self.expected):
                await _refuse(send, 401, "missing or wrong control token")
                return
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, message: str) -> None:
    """Answer an HTTP request with a JSON error (401 asks for a bearer token)."""
    headers = [(b"content-type", b"application/json")]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps({"error": message}).encode()})


class SessionTracker:
    """ASGI middleware on the policy app: opens a session's env when the `initialize` response
    assigns its id, closes it when the client deletes the session or the SDK no longer knows it."""

    def __init__(self, app: ASGIApp, episodes: Episodes, *, max_sessions: int) -> None:
        self.app = app
        self.episodes = episodes
        self.max_sessions = max_sessions

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asked = _header(scope, SESSION_HEADER.encode())
        if asked is None and len(self.episodes.live) >= self.max_sessions:
            self.episodes.reap()
            if len(self.episodes.live) >= self.max_sessions:
                await _refuse(send, 503, f"all {self.max_sessions} sessions are in use")
                return
        status = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                given = dict(message.get("headers", [])).get(SESSION_HEADER.encode())
                if asked is None and given and status < 400:
                    self.episodes.open(given.decode())
            await send(message)

        await self.app(scope, receive, watch)
        if asked is not None and (status == 404 or scope["method"] == "DELETE" and status < 300):
            self.episodes.close(asked.decode())


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value
    return None


# ----- running ---------------------------------------------------------------------------------
@dataclass
class ServeOptions:
    """What `envfactory serve` was asked for (the CLI's arguments, typed)."""

    env_id: str
    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = 8000
    admin_host: str = "127.0.0.1"
    admin_port: int = 0
    admin_token: str | None = None
    no_control: bool = False
    split: str = "train"
    task: str | None = None
    seed: int = 0
    max_turns: int | None = None
    max_sessions: int = 256
    session_timeout: float = 1800.0
    info_file: str | None = None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    if host in ("0.0.0.0", "::"):
        shown = "127.0.0.1"
    return f"http://{shown}:{port}{MCP_PATH}"


def _uvicorn_server(app: Any) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal handlers: `serve` stops both servers itself."""

        @contextlib.contextmanager
        def capture_signals(self) -> Any:
            yield

    return Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))


async def serve(options: ServeOptions, *, ready: Callable[[dict[str, Any]], None] | None = None
                ) -> None:  # fmt: skip
    """Serve `options.env_id` until stdin closes (stdio) or SIGINT/SIGTERM arrives."""
    require_mcp()
    for name in ("mcp", "httpx2", "uvicorn"):  # the SDK logs every session at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    if options.transport not in ("stdio", "http"):
        raise ValueError(f"transport must be 'stdio' or 'http', not {options.transport!r}")
    package = load_package(package_name(options.env_id))
    stdio = options.transport == "stdio"
    episodes = Episodes(
        package, split=options.split, max_turns=options.max_turns, task=options.task,
        seed=options.seed, idle_timeout=None if stdio else options.session_timeout,
    )  # fmt: skip
    policy = policy_server(episodes, stdio=stdio)
    info: dict[str, Any] = {"env": options.env_id, "pid": os.getpid()}
    info["transport"] = options.transport
    servers: list[Any] = []
    sockets: list[socket.socket] = []
    if not options.no_control:
        token = options.admin_token or os.environ.get(TOKEN_ENV)
        if not token:  # made up here, so announced on stderr (a given one is not echoed)
            token = info["generated_token"] = secrets.token_urlsafe(24)
        control = control_server(episodes)
        control_app = BearerToken(
            control.streamable_http_app(
                streamable_http_path=MCP_PATH, stateless_http=True, host=options.admin_host
            ),
            token,
        )
        sock = _bind(options.admin_host, options.admin_port)
        sockets.append(sock)
        servers.append(_uvicorn_server(control_app))
        info["control_url"], info["control_token"] = _url(options.admin_host, sock), token
    if not stdio:
        accepted = inspect.signature(policy.streamable_http_app).parameters
        idle = {"session_idle_timeout": options.session_timeout}  # not in mcp 2.0
        policy_app = SessionTracker(
            policy.streamable_http_app(
                streamable_http_path=MCP_PATH, host=options.host,
                **{k: v for k, v in idle.items() if k in accepted},
            ),
            episodes,
            max_sessions=options.max_sessions,
        )  # fmt: skip
        sock = _bind(options.host, options.port)
        sockets.insert(0, sock)
        servers.insert(0, _uvicorn_server(policy_app))
        info["policy_url"] = _url(options.host, sock)
    else:
        episodes.open(STDIO_SESSION)
        info["policy_session"] = STDIO_SESSION
    _announce(info, options.info_file)
    if ready is not None:
        ready(info)

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stopping.set)
    pairs = zip(servers, sockets, strict=True)
    tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in pairs]
    stdio_task = asyncio.create_task(_serve_stdio(policy)) if stdio else None
    stopper = asyncio.create_task(stopping.wait())
    running = [*tasks, stopper] + ([stdio_task] if stdio_task else [])
    try:
        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for server in servers:  # uvicorn finishes its requests and stops
            server.should_exit = True
        for task in (stopper, stdio_task):
            if task is not None and not task.done():
                task.cancel()
        results = await asyncio.gather(*running, return_exceptions=True)
        episodes.close_all()
        if options.info_file:
            with contextlib.suppress(OSError):
                Path(options.info_file).unlink()
    errors = [r for r in results if isinstance(r, Exception)]
    if errors:
        raise errors[0]


async def _serve_stdio(policy: Any) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await policy.run(read_stream, write_stream, policy.create_initialization_options())


def _announce(info: dict[str, Any], info_file: str | None) -> None:
    """Say where the servers listen (stderr: stdout is the stdio transport), and write it all,
    token included, to `info_file` (mode 0600) for a harness that asked for port 0."""
    where = info.get("policy_url") or "stdin/stdout (session 'stdio')"
    print(f"envfactory serve: {info['env']} tools over MCP at {where}", file=sys.stderr)
    if "control_url" in info:
        generated = info.pop("generated_token", None)
        token = f"Bearer {generated}" if generated else f"--admin-token or ${TOKEN_ENV}"
        print(f"envfactory serve: episode control at {info['control_url']} "
              f"(Authorization: {token})", file=sys.stderr)  # fmt: skip
    sys.stderr.flush()
    if info_file:
        path = Path(info_file)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(info, handle, indent=2)
        tmp.replace(path)


# ----- client helpers for a harness ------------------------------------------------------------
@contextlib.asynccontextmanager
async def policy_client(url: str, **kwargs: Any) -> AsyncIterator[tuple[Client, str]]:
    """Connect to a policy endpoint over streamable HTTP: yields the SDK `Client` (give its tools
    to the policy) and the session id (for the control calls). `kwargs` go to `mcp.Client`."""
    require_mcp()
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    seen: list[str] = []

    async def remember(response: Any) -> None:
        session = response.headers.get(SESSION_HEADER)
        if session and not seen:
            seen.append(session)

    http = _http_client({})
    http.event_hooks["response"].append(remember)
    async with http, Client(streamable_http_client(url, http_client=http), **kwargs) as client:
        if not seen:
            raise RuntimeError(f"{url} assigned no MCP session id; is it `envfactory serve`?")
        yield client, seen[0]


def _http_client(headers: dict[str, str]) -> Any:
    """An HTTP client with the MCP transports' timeouts (30 s, and 300 s to read a stream)."""
    import httpx2  # the SDK's HTTP client

    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0))


class ControlClient:
    """The harness's side of the control server: `async with ControlClient(url, token) as c:`,
    then `await c.reset(session, task_id)`, `await c.step(session, text)`, `await c.reward(...)`.
    Each method returns the tool's JSON result; a failed call raises `RuntimeError`."""

    def __init__(self, url: str, token: str) -> None:
        require_mcp()
        self.url, self.token = url, token
        self._stack = contextlib.AsyncExitStack()
        self.client: Client | None = None

    async def __aenter__(self) -> ControlClient:
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        refused: list[int] = []

        async def watch(response: Any) -> None:
            if response.status_code in (401, 403):
                refused.append(response.status_code)

        http = _http_client({"Authorization": f"Bearer {self.token}"})
        http.event_hooks["response"].append(watch)
        await self._stack.enter_async_context(http)
        transport = streamable_http_client(self.url, http_client=http)
        try:
            self.client = await self._stack.enter_async_context(Client(transport))
        except BaseException:
            await self._stack.aclose()
            if refused:
                raise RuntimeError(
                    f"the control server at {self.url} refused the token (HTTP {refused[0]})"
                ) from None
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def call(self, name: str, **arguments: Any) -> Any:
        """Call one control tool and return its JSON result."""
        assert self.client is not None, "use `async with ControlClient(...)`"
        args = {k: v for k, v in arguments.items() if v is not None}
        result = await self.client.call_tool(name, args)
        text = "".join(getattr(block, "text", "") for block in result.content)
        if result.is_error:
            raise RuntimeError(f"control {name} failed: {text}")
        if result.structured_content is not None:
            data = result.structured_content
            return data["result"] if set(data) == {"result"} else data
        return json.loads(text)

    async def sessions(self) -> list[dict[str, Any]]:
        return await self.call("sessions")

    async def tasks(self, split: str = "all") -> list[dict[str, Any]]:
        return await self.call("tasks", split=split)

    async def reset(self, session: str, task_id: str | None = None, *, split: str | None = None,
                    seed: int | None = None) -> dict[str, Any]:  # fmt: skip
        return await self.call("reset", session=session, task_id=task_id, split=split, seed=seed)

    async def step(self, session: str, action: str) -> dict[str, Any]:
        return await self.call("step", session=session, action=action)

    async def reward(self, session: str) -> dict[str, Any]:
        return await self.call("reward", session=session)

    async def conversation(self, session: str) -> list[dict[str, Any]]:
        return await self.call("conversation", session=session)


# ----- CLI -------------------------------------------------------------------------------------
def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `serve` to the `envfactory` CLI's subparsers (sets `fn=cmd_serve`)."""
    p = subparsers.add_parser(
        "serve",
        help="serve an env's tools over MCP (stdio or streamable HTTP), one database per session",
        description="The env's tools over MCP with their full JSON schemas; each MCP session "
        "gets its own database. Episode control (reset, the user's side, reward) is a separate "
        "MCP server on loopback that needs a bearer token, so the policy cannot reach it. "
        f"Needs the mcp extra: {MCP_EXTRA}.",
    )
    p.add_argument("env", metavar="ENV_ID", help="a registered gym id, e.g. envfactory/Airline-v0")
    p.add_argument("--transport", choices=["stdio", "http"], default="stdio",
                   help="stdio (one session) or streamable HTTP (default: stdio)")  # fmt: skip
    p.add_argument("--host", default="127.0.0.1", help="HTTP host (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="HTTP port; 0 picks one (default: 8000)")
    p.add_argument("--admin-host", default="127.0.0.1",
                   help="control server host (default: 127.0.0.1)")  # fmt: skip
    p.add_argument("--admin-port", type=int, default=0,
                   help="control server port (default: 0, a free port, announced on stderr and "
                   "in --info-file)")  # fmt: skip
    p.add_argument("--admin-token", help=f"the control bearer token (default: ${TOKEN_ENV}, "
                   "else a random one, announced on stderr)")  # fmt: skip
    p.add_argument("--no-control", action="store_true", help="no control server")
    p.add_argument("--info-file", metavar="PATH", help="write the URLs and the token here as "
                   "JSON (mode 0600) once listening; removed on exit")  # fmt: skip
    p.add_argument("--split", default="train", choices=["train", "test", "all"],
                   help="tasks new sessions and reset draw from (default: train)")  # fmt: skip
    p.add_argument("--task", help="the task every new session starts on")
    p.add_argument("--seed", type=int, default=0, help="draws a new session's task (default: 0)")
    p.add_argument("--max-turns", type=int, help="agent turns per episode (default: the env's)")
    p.add_argument("--max-sessions", type=int, default=256,
                   help="concurrent HTTP sessions (default: 256)")  # fmt: skip
    p.add_argument("--session-timeout", type=float, default=1800.0,
                   help="idle seconds before an HTTP session closes (default: 1800)")  # fmt: skip
    p.set_defaults(fn=cmd_serve)
    return p


def cmd_serve(args: argparse.Namespace) -> int:
    """`envfactory serve`: run until stdin closes (stdio) or SIGINT/SIGTERM."""
    try:
        require_mcp()
    except ImportError as exc:
        print(f"envfactory serve: {exc}", file=sys.stderr)
        return 2
    options = ServeOptions(
        env_id=args.env, transport=args.transport, host=args.host, port=args.port,
        admin_host=args.admin_host, admin_port=args.admin_port, admin_token=args.admin_token,
        no_control=args.no_control, split=args.split, task=args.task, seed=args.seed,
        max_turns=args.max_turns, max_sessions=args.max_sessions,
        session_timeout=args.session_timeout, info_file=args.info_file,
    )  # fmt: skip
    asyncio.run(serve(options))
    return 0


def _version() -> str:
    from envfactory_gym import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """`python -m envfactory_gym.serve ENV_ID ...`: the same as `envfactory serve`."""
    root = argparse.ArgumentParser(prog="python -m envfactory_gym.serve")
    sub = root.add_subparsers(dest="command")
    parser = add_serve_parser(sub)
    args = parser.parse_args(argv)
    try:
        return cmd_serve(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"envfactory serve: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
