"""`envfactory serve`: the env's tools over MCP (stdio and streamable HTTP) with the SDK's own
client; episode control on its own token-guarded server; one database per session."""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters, stdio_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from envfactory_gym.checker import oracle_answer  # noqa: E402
from envfactory_gym.serve import (  # noqa: E402
    STDIO_SESSION,
    ControlClient,
    add_serve_parser,
    cmd_serve,
    policy_client,
)

ENV_ID = "envfactory/Airline-v0"
USER = "ethan_costa_6349"
SERVE = [sys.executable, "-m", "envfactory_gym.serve", ENV_ID]
ORACLE_TASKS = ("airline-flight_status-00", "airline-cancel-00")


def run(coro):
    return asyncio.run(coro)


def wait_for(info_file: Path, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + 60
    while not info_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return json.loads(info_file.read_text())


@contextmanager
def http_server(tmp: Path):
    info_file, log = tmp / "info.json", tmp / "server.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [*SERVE, "--transport", "http", "--port", "0", "--info-file", str(info_file)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        yield wait_for(info_file, process, log)
    finally:
        process.terminate()
        assert process.wait(timeout=20) == 0, log.read_text()  # SIGTERM is a clean stop
        assert not info_file.exists()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with http_server(tmp_path_factory.mktemp("serve")) as info:
        yield info


def expected_tools(package) -> dict[str, dict]:
    return {
        s["function"]["name"]: {
            "description": s["function"]["description"],
            "inputSchema": s["function"]["parameters"],
        }
        for s in package.tool_schemas
    }


def listed(tools) -> dict[str, dict]:
    return {
        t.name: {"description": t.description, "inputSchema": t.input_schema} for t in tools.tools
    }


def text(result) -> str:
    return "".join(block.text for block in result.content)


def certificates(user_details: str) -> list[int]:
    methods = json.loads(user_details)["payment_methods"].values()
    return sorted(m["balance"] for m in methods if m["source"] == "certificate")


async def oracle_episode(policy: Client, control: ControlClient, session: str, task) -> dict:
    started = await control.reset(session, task.id)
    assert started["observation"] == task.instruction and started["turn"] == 0
    for call in task.calls:
        result = await policy.call_tool(call.name, call.arguments)
        assert not result.is_error, text(result)
    done = await control.step(session, oracle_answer(task.outputs))
    assert done["terminated"] and done["reward"] == done["reward_breakdown"]["total"]
    final = await control.reward(session)
    assert final["final"] and final["reward"] == done["reward"]
    return final


# ----- the package imports without the SDK; the CLI parser --------------------------------------
def test_core_imports_without_mcp_and_serving_names_the_extra():
    code = (
        "import sys; sys.modules['mcp'] = None\n"
        "import envfactory_gym, envfactory_gym.serve as s\n"
        "assert not [m for m in sys.modules if m.split('.')[0] == 'mcp' and sys.modules[m]]\n"
        "try:\n    s.require_mcp()\nexcept ImportError as e:\n    print(e)\n"
        "print('rc', s.main(['envfactory/Airline-v0']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'pip install "envfactory-gym[mcp]"' in done.stdout and "rc 2" in done.stdout
    assert 'pip install "envfactory-gym[mcp]"' in done.stderr


def test_serve_parser_plugs_into_a_cli():
    root = argparse.ArgumentParser(prog="envfactory")
    add_serve_parser(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(["serve", ENV_ID, "--transport", "http", "--host", "0.0.0.0",
                            "--port", "9000", "--admin-port", "9001"])  # fmt: skip
    assert args.fn is cmd_serve and args.env == ENV_ID and args.transport == "http"
    assert (args.host, args.port, args.admin_port, args.admin_host) == (
        "0.0.0.0", 9000, 9001, "127.0.0.1"
    )  # fmt: skip
    with pytest.raises(SystemExit):
        root.parse_args(["serve", ENV_ID, "--transport", "sse"])


# ----- streamable HTTP -----------------------------------------------------------------------
def test_http_lists_the_env_tools_with_their_full_schemas(server, package):
    async def main():
        async with policy_client(server["policy_url"]) as (policy, session):
            assert policy.protocol_version < "2026"  # the handshake era: sessions exist
            tools = await policy.list_tools()
            with pytest.raises(MCPError):  # nothing but tools on the policy's side
                await policy.list_resources()
            with pytest.raises(MCPError):
                await policy.list_prompts()
            return session, tools, policy.session.initialize_result.instructions

    session, tools, instructions = run(main())
    assert len(session) >= 16
    assert listed(tools) == expected_tools(package)  # exact: nothing re-derived or dropped
    schemas = {t.name: t.input_schema for t in tools.tools}
    cabin = schemas["update_reservation_flights"]["properties"]["cabin"]
    assert cabin["enum"] == ["basic_economy", "economy", "business"]
    bags = schemas["update_reservation_baggages"]["properties"]["total_baggages"]
    assert (bags["minimum"], bags["maximum"]) == (0, 50)
    passengers = schemas["update_reservation_passengers"]["properties"]["passengers"]
    assert passengers["items"]["required"] == ["first_name", "last_name", "dob"]
    assert passengers["items"]["additionalProperties"] is False
    assert package.policy.strip()[:200] in instructions
    control = {"reset", "step", "reward", "sessions", "tasks", "conversation"}
    assert not control & set(schemas)


def test_http_tool_calls_go_through_the_env(server):
    async def main():
        async with (
            policy_client(server["policy_url"]) as (policy, session),
            ControlClient(server["control_url"], server["control_token"]) as control,
        ):
            await control.reset(session, "airline-flight_status-00")
            wrote = await policy.call_tool("send_certificate", {"user_id": USER, "amount": 777})
            assert not wrote.is_error and "with amount 777" in text(wrote)
            read = await policy.call_tool("get_user_details", {"user_id": USER})
            assert certificates(text(read)) == [777]
            # the runtime's own errors: schema validation (format penalty), unknown tool, a
            # tool error whose writes roll back
            bad = await policy.call_tool("send_certificate", {"user_id": USER, "amount": -5})
            assert bad.is_error and "invalid arguments for send_certificate" in text(bad)
            unknown = await policy.call_tool("refund_everything", {})
            assert unknown.is_error and "unknown tool" in text(unknown)
            missing = await policy.call_tool("send_certificate", {"user_id": "no_one", "amount": 1})
            assert missing.is_error and "not found" in text(missing)
            score = await control.reward(session)
            history = await control.conversation(session)
            return score, history

    score, history = run(main())
    assert not score["final"] and score["turn"] == 5
    assert score["reward_breakdown"]["format_errors"] == 2
    assert score["reward_breakdown"]["violations"]  # the certificate nobody asked for
    assert history[0]["role"] == "system"
    assert [m["name"] for m in history if m["role"] == "tool"][:2] == [
        "send_certificate", "get_user_details"
    ]  # fmt: skip


def test_http_control_needs_its_token(server):
    import httpx2

    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    for token in (None, "wrong"):
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx2.post(server["control_url"], json=body, headers=headers | auth)
        assert response.status_code == 401

    async def main():
        async with ControlClient(server["control_url"], "wrong") as control:
            await control.sessions()

    with pytest.raises(RuntimeError, match="refused the token"):
        run(main())


def test_http_oracle_episodes_score_one(server, package):
    async def main():
        async with (
            policy_client(server["policy_url"]) as (policy, session),
            ControlClient(server["control_url"], server["control_token"]) as control,
        ):
            finals = [
                await oracle_episode(policy, control, session, package.task(task_id))
                for task_id in ORACLE_TASKS
            ]
            after = await policy.call_tool("list_all_airports", {})
            return finals, after

    finals, after = run(main())
    assert [f["reward"] for f in finals] == [1.0, 1.0]
    assert all(f["reward_breakdown"]["success"] for f in finals)
    assert after.is_error and "episode is over" in text(after)


def test_http_50_concurrent_sessions_stay_isolated(server):
    n = 50

    async def main():
        barrier = asyncio.Barrier(n)

        async def one(i: int, control: ControlClient) -> tuple[str, str, str]:
            async with policy_client(server["policy_url"]) as (policy, session):
                await control.reset(session, "airline-flight_status-00")
                await barrier.wait()  # every session open before anyone writes
                for amount in (1000 + i, 2000 + i):  # two rounds of writes, interleaved
                    result = await policy.call_tool(
                        "send_certificate", {"user_id": USER, "amount": amount}
                    )
                    assert not result.is_error, text(result)
                    await asyncio.sleep(0)
                await barrier.wait()  # every write done before anyone reads
                seen = text(await policy.call_tool("get_user_details", {"user_id": USER}))
                listed = await control.sessions()
                return session, seen, json.dumps(listed)

        async with ControlClient(server["control_url"], server["control_token"]) as control:
            results = await asyncio.gather(*(one(i, control) for i in range(n)))
            await asyncio.sleep(0.2)
            remaining = await control.sessions()
        return results, remaining

    started = time.monotonic()
    results, remaining = run(main())
    seconds = time.monotonic() - started
    assert len({session for session, _, _ in results}) == n
    for i, (session, seen, listed) in enumerate(results):
        assert certificates(seen) == [1000 + i, 2000 + i], i  # its own writes, no one else's
        assert session in listed
    assert remaining == []  # each client deleted its session; its env went with it
    print(f"{n} concurrent sessions, 4 calls each: {seconds:.2f} s")


def test_http_client_pinned_to_the_sessionless_era_is_told_why(server):
    async def main():
        async with Client(server["policy_url"], mode="2026-07-28") as policy:
            assert (await policy.list_tools()).tools  # listing needs no session
            with pytest.raises(MCPError, match="one episode per MCP session"):
                await policy.call_tool("list_all_airports", {})

    run(main())


# ----- stdio ---------------------------------------------------------------------------------
def test_stdio_tools_state_and_an_oracle_episode(tmp_path, package):
    info_file = tmp_path / "info.json"
    params = StdioServerParameters(
        command=sys.executable,
        args=[*SERVE[1:], "--transport", "stdio", "--info-file", str(info_file)],
        env={**os.environ, "ENVFACTORY_CONTROL_TOKEN": "stdio-test-token"},
        cwd=str(Path(__file__).resolve().parent.parent),
    )

    async def main():
        async with Client(stdio_client(params)) as policy:
            tools = await policy.list_tools()
            info = json.loads(info_file.read_text())
            assert info["control_token"] == "stdio-test-token"
            async with ControlClient(info["control_url"], info["control_token"]) as control:
                assert [s["session"] for s in await control.sessions()] == [STDIO_SESSION]
                await control.reset(STDIO_SESSION, "airline-flight_status-00")
                wrote = await policy.call_tool(
                    "send_certificate", {"user_id": USER, "amount": 4321}
                )
                seen = text(await policy.call_tool("get_user_details", {"user_id": USER}))
                final = await oracle_episode(
                    policy, control, STDIO_SESSION, package.task("airline-cancel-00")
                )
        return tools, wrote, seen, final

    tools, wrote, seen, final = run(main())
    assert listed(tools) == expected_tools(package)
    assert not wrote.is_error and certificates(seen) == [4321]
    assert final["reward"] == 1.0 and final["reward_breakdown"]["success"]
    assert not info_file.exists()  # the server exited when its stdin closed
