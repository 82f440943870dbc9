"""`envfactory verify DIR`: prove that an env package works before anyone trains on it.

A generated tools.py and seed.py are code, so the checks run in a worker subprocess under
resource limits (address space, CPU time, file size) with an audit hook that refuses network
access, new processes and writes outside the worker's temporary directory. The worker checks:

- `load`: the package loads; schema and seed build with constraints on; `PRAGMA
  integrity_check` and `PRAGMA foreign_key_check` pass; the seed is deterministic;
- `tools`: every tool succeeds on valid arguments (each task's ground truth, and arguments
  sampled from the seed data) and fails cleanly (a `ToolError`, no trace in the database) on
  invalid ones: a missing argument, a wrong type, an unknown argument, a nonexistent key;
- `tasks`: every task passes `envfactory_gym.checker.check_package` (replay to the expected
  state and outputs, oracle, collateral writes...);
- `env_checker`: the package registers with Gymnasium and passes its env checker;
- `sandbox`: nothing hit the limits or tried a blocked operation (named by tool or stage).

The audit hook guards against accidents and careless generated code; it is not a security
boundary against code written to escape it (Python's audit hooks cannot be).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import gymnasium as gym
from gymnasium.utils.env_checker import check_env
from pydantic import BaseModel, Field

from envfactory_gym.checker import check_package
from envfactory_gym.database import quote_name, table_digest, user_tables
from envfactory_gym.package import EnvPackage, load_package
from envfactory_gym.tools import Tool, ToolError

STAGES = ("load", "tools", "tasks", "env_checker", "sandbox")
ENTRY_POINT = "envfactory_gym.env:ToolUseEnv"
MISSING_TEXT = "does-not-exist-0"
MISSING_NUMBER = 987654321
SAMPLES_PER_TOOL = 3
UNKNOWN_ARGUMENT = "unexpected_argument"
PROGRESS = "@@envfactory-verify "
"""Prefix of the worker's progress lines on stderr: the parent names the stage a timeout hit."""
FILE_SIZE_LIMIT = 1 << 30
CPU_GRACE_S = 5
"""CPU seconds beyond the wall-clock timeout, so that the parent's timeout normally fires first."""
TAIL_BYTES = 1 << 16


class VerifyFailure(BaseModel):
    """One failed check: the stage, what failed (a tool, a task, a file) and why."""

    stage: str
    subject: str
    detail: str


class VerifyReport(BaseModel):
    """What `verify_package` found; `passed` only when no check failed."""

    package: str
    passed: bool
    stages: dict[str, int] = Field(description="How many checks each stage ran.")
    failures: list[VerifyFailure] = Field(default_factory=list)
    seconds: float
    tools_valid: dict[str, int] = Field(
        default_factory=dict, description="Tool -> calls with valid arguments that succeeded."
    )
    tools_invalid: dict[str, int] = Field(
        default_factory=dict, description="Tool -> calls with invalid arguments tried."
    )
    notes: list[str] = Field(default_factory=list, description="What could not be checked.")


# ----- the subprocess ------------------------------------------------------------------------
def verify_package(
    folder: str | Path, *, timeout_s: float = 300, memory_mb: int = 4096
) -> VerifyReport:
    """Verify an env package in a sandboxed worker process (limits, no network, no writes
    outside a fresh temporary directory that is also its cwd, HOME and TMPDIR)."""
    folder = Path(folder).resolve()
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="envfactory-verify-") as sandbox,
        tempfile.TemporaryDirectory(prefix="envfactory-verify-logs-") as logs,
    ):
        root = Path(sandbox)
        command = [
            sys.executable, "-m", "envfactory_gym.generators.verify", "--worker", str(folder),
            "--root", str(root), "--timeout", f"{timeout_s:g}", "--memory-mb", str(memory_mb),
        ]  # fmt: skip
        out_path, err_path = Path(logs) / "stdout", Path(logs) / "stderr"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            process = subprocess.Popen(
                command, cwd=root, env=_worker_env(root), stdin=subprocess.DEVNULL,
                stdout=out, stderr=err,
            )  # fmt: skip
            try:
                returncode: int | None = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                returncode = None
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        stdout, stderr = _tail(out_path), _tail(err_path)
    report = _read_report(stdout)
    if report is None or returncode is None:
        report = VerifyReport(
            package=str(folder),
            passed=False,
            stages=dict.fromkeys(STAGES, 0) | {"sandbox": 1},
            failures=[
                VerifyFailure(
                    stage="sandbox",
                    subject=_last_progress(stderr) or "worker",
                    detail=_worker_death(returncode, timeout_s, memory_mb, stderr),
                )
            ],
            seconds=0.0,
        )
    report.seconds = round(time.perf_counter() - start, 3)
    return report


def _worker_env(root: Path) -> dict[str, str]:
    """A clean environment: no secrets from the caller's, no user cache, no bytecode writes."""
    keep = ("PATH", "PYTHONPATH", "PYTHONUSERBASE", "VIRTUAL_ENV", "LANG", "LC_ALL", "LC_CTYPE")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    for name in ("home", "tmp", "cache"):
        (root / name).mkdir()
    env |= {
        "HOME": str(root / "home"),
        "TMPDIR": str(root / "tmp"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "ENVFACTORY_CACHE": "off",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if "PYTHONUSERBASE" not in env:  # HOME moves, so keep a user-site install importable
        import site

        env["PYTHONUSERBASE"] = site.getuserbase()
    return env


def _tail(path: Path) -> str:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - TAIL_BYTES))
        return handle.read().decode("utf-8", "replace")


def _read_report(stdout: str) -> VerifyReport | None:
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return VerifyReport.model_validate_json(lines[-1])
    except ValueError:
        return None


def _last_progress(stderr: str) -> str | None:
    """'stage: subject' from the worker's last progress line, if it wrote one."""
    for line in reversed(stderr.splitlines()):
        if line.startswith(PROGRESS):
            stage, _, subject = line[len(PROGRESS) :].partition("\t")
            return f"{stage}: {subject}"
    return None


def _worker_death(returncode: int | None, timeout_s: float, memory_mb: int, stderr: str) -> str:
    """Why the worker gave no report, with where it was and the end of its stderr."""
    where = _last_progress(stderr)
    during = f" during {where}" if where else ""
    if returncode is None:
        return f"timed out after {timeout_s:g} s{during}"
    if returncode == -signal.SIGXCPU:
        return (
            f"timed out: used its CPU time limit ({math.ceil(timeout_s) + CPU_GRACE_S} s){during}"
        )
    if returncode == -signal.SIGKILL:
        return f"killed (SIGKILL: out of memory, limit {memory_mb} MB, or CPU time){during}"
    if returncode < 0:
        try:
            cause = f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            cause = f"killed by signal {-returncode}"
    else:
        cause = f"exited with status {returncode} without a report"
    lines = [line for line in stderr.splitlines() if not line.startswith(PROGRESS)]
    return f"worker {cause}{during}; stderr: {' | '.join(lines)[-1500:] or '(empty)'}"


# ----- the sandbox ---------------------------------------------------------------------------
NETWORK_EVENTS = frozenset(
    {
        "socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
        "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
        "socket.getnameinfo", "socket.getservbyname", "socket.getservbyport",
        "http.client.connect", "urllib.Request", "ftplib.connect", "smtplib.connect",
        "poplib.connect", "imaplib.open", "nntplib.connect", "telnetlib.Telnet.open",
        "webbrowser.open",
    }
)  # fmt: skip
PROCESS_EVENTS = frozenset(
    {
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
        "os.forkpty", "os.startfile", "os.kill", "os.killpg", "pty.spawn",
    }
)  # fmt: skip
OTHER_EVENTS = frozenset(
    {
        "_thread.start_new_thread",  # where raised: a thread outlives the call it is blamed on
        "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function",
        "resource.setrlimit", "resource.prlimit",
        "gc.get_referrers", "gc.get_referents", "gc.get_objects",  # reaching the sandbox's state
        "sqlite3.load_extension",
    }
)  # fmt: skip
PATH_EVENTS: dict[str, tuple[tuple[int, int | None], ...]] = {
    # event -> (index of a path it changes, index of its dir_fd or None)
    "os.remove": ((0, 1),), "os.rmdir": ((0, 1),), "os.mkdir": ((0, 2),),
    "shutil.rmtree": ((0, 1),), "os.rename": ((0, 2), (1, 3)), "os.link": ((0, 2), (1, 3)),
    "os.symlink": ((1, 2),), "os.truncate": ((0, None),), "os.chmod": ((0, 2),),
    "os.chown": ((0, 3),), "os.utime": ((0, 3),), "os.chflags": ((0, None),),
    "os.lchflags": ((0, None),), "os.lchmod": ((0, None),), "os.setxattr": ((0, None),),
    "os.removexattr": ((0, None),), "shutil.copyfile": ((1, None),),
}  # fmt: skip
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
WRITABLE_DEVICES = ("/dev/null",)
WATCHED = NETWORK_EVENTS | PROCESS_EVENTS | OTHER_EVENTS | set(PATH_EVENTS)
WATCHED |= {"open", "sqlite3.connect", "sqlite3.enable_load_extension"}


@dataclass
class Violation:
    """One blocked attempt: the audit event, its arguments, and who made it."""

    event: str
    arguments: str
    stage: str
    subject: str
    where: str


@dataclass
class _Progress:
    """The stage and subject being checked: blocked attempts are charged to them, and the worker
    reports them on stderr so that a timeout can name them."""

    stage: str = "load"
    subject: str = "package"
    stream: TextIO | None = None

    def enter(self, stage: str, subject: str) -> None:
        if (stage, subject) == (self.stage, self.subject):
            return
        self.stage, self.subject = stage, subject
        if self.stream is not None:
            self.stream.write(f"{PROGRESS}{stage}\t{subject}\n")
            self.stream.flush()


_PROGRESS = _Progress()


class Sandbox:
    """An audit hook that raises `PermissionError("sandbox: ...")` on network access, process
    creation, native code and file changes outside `root`, and records every attempt (a tool
    that swallows the exception is still reported). Reading files stays allowed."""

    def __init__(self, root: Path, package_folder: Path) -> None:
        self.root = os.path.realpath(root)
        self.package_folder = os.path.realpath(package_folder) + os.sep
        self.violations: list[Violation] = []
        self._busy = False

    def install(self) -> None:
        sys.dont_write_bytecode = True  # the import system must not write .pyc files
        sys.addaudithook(self._hook)
        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            """`sqlite3.connect` with the authorizer that refuses ATTACH and VACUUM INTO of
            files outside the root (they write files without an audit event)."""
            conn = original(*args, **kwargs)
            conn.set_authorizer(self._authorize)
            return conn

        sqlite3.connect = sqlite3.dbapi2.connect = connect

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in WATCHED or self._busy:
            return
        self._busy = True
        try:
            problem = self._problem(event, args)
        except Exception as exc:  # noqa: BLE001 - fail closed on arguments it cannot read
            problem = f"arguments it cannot check ({_describe(exc)})"
        finally:
            self._busy = False
        if problem is not None:
            self._block(event, problem)

    def _problem(self, event: str, args: tuple[Any, ...]) -> str | None:
        """What is wrong with this event, or None when it is allowed."""
        if event in NETWORK_EVENTS or event in PROCESS_EVENTS or event in OTHER_EVENTS:
            return _summary(args)
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            writes = isinstance(flags, int) and flags & WRITE_FLAGS
            writes = writes or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writes and not self.allowed(path):
                return _summary((path, mode if mode is not None else flags))
            return None
        if event in PATH_EVENTS:
            for index, fd_index in PATH_EVENTS[event]:
                if index < len(args):
                    dir_fd = (
                        args[fd_index] if fd_index is not None and fd_index < len(args) else None
                    )
                    if not self.allowed(args[index], dir_fd):
                        return _summary(args)
            return None
        if event == "sqlite3.connect":
            return None if self._sqlite_allowed(args[0] if args else "") else _summary(args)
        if event == "sqlite3.enable_load_extension":
            return _summary(args[1:]) if len(args) > 1 and args[1] else None
        return None

    def allowed(self, path: Any, dir_fd: Any = None) -> bool:
        """Whether a write to `path` stays inside the sandbox root (an open descriptor does)."""
        if isinstance(path, int):
            return True
        try:
            text = os.fsdecode(os.fspath(path))
            if isinstance(dir_fd, int) and dir_fd >= 0 and not os.path.isabs(text):
                text = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), text)
            real = os.path.realpath(text)
        except (TypeError, ValueError, OSError):
            return False
        return real in WRITABLE_DEVICES or real == self.root or real.startswith(self.root + os.sep)

    def _sqlite_allowed(self, database: Any) -> bool:
        try:
            text = os.fsdecode(os.fspath(database))
        except TypeError:
            return False
        if text in ("", ":memory:") or text.startswith("file::memory:"):
            return True
        if text.startswith("file:"):
            path, _, query = text[5:].partition("?")
            return "mode=memory" in query or "mode=ro" in query or self.allowed(path)
        return self.allowed(text)

    def _authorize(self, action: int, arg1: Any, *_: Any) -> int:
        if action == sqlite3.SQLITE_ATTACH and not self._busy and not self._sqlite_allowed(arg1):
            self._record("sqlite3.attach", _summary(arg1))
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    def _block(self, event: str, arguments: str) -> None:
        self._record(event, arguments)
        raise PermissionError(f"sandbox: {event} is not allowed ({arguments})")

    def _record(self, event: str, arguments: str) -> None:
        self._busy = True
        try:
            subject, where = self._culprit()
        finally:
            self._busy = False
        self.violations.append(
            Violation(event, arguments, _PROGRESS.stage, subject or _PROGRESS.subject, where)
        )

    def _culprit(self) -> tuple[str | None, str]:
        """The package function that made the attempt (the outermost frame in the package's
        folder: the tool itself) and where (the innermost such frame)."""
        outer = inner = None
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith(self.package_folder):
                inner = inner or frame
                outer = frame
            frame = frame.f_back
        if outer is None or inner is None:
            return None, "outside the package's code"
        code = outer.f_code
        name = code.co_name if code.co_name != "<module>" else Path(code.co_filename).name
        where = f"{Path(inner.f_code.co_filename).name}:{inner.f_lineno} in {inner.f_code.co_name}"
        return name, where


_SANDBOX: Sandbox | None = None


def _summary(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def set_limits(timeout_s: float, memory_mb: int) -> list[str]:
    """Cap this process's address space, CPU time, file size and core dumps (never above the
    current hard limits); return a note for each limit that could not be set."""
    import resource

    cpu = math.ceil(timeout_s) + CPU_GRACE_S
    wanted = {
        "RLIMIT_AS": (memory_mb << 20, memory_mb << 20),
        "RLIMIT_CPU": (cpu, cpu + CPU_GRACE_S),
        "RLIMIT_FSIZE": (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT),
        "RLIMIT_CORE": (0, 0),
    }
    notes = []
    for name, (soft, hard) in wanted.items():
        kind = getattr(resource, name, None)
        if kind is None:
            notes.append(f"limit {name} is not available on this platform")
            continue
        current_hard = resource.getrlimit(kind)[1]
        if current_hard != resource.RLIM_INFINITY:
            soft, hard = min(soft, current_hard), min(hard, current_hard)
        try:
            resource.setrlimit(kind, (soft, hard))
        except (ValueError, OSError) as exc:
            notes.append(f"limit {name} not set: {exc}")
    return notes


def install_sandbox(root: Path, package_folder: Path) -> Sandbox:
    """Install the audit hook for the rest of this process (hooks cannot be removed: call it
    only in a worker)."""
    global _SANDBOX
    if _SANDBOX is not None:
        raise RuntimeError("the sandbox is already installed in this process")
    _SANDBOX = Sandbox(root, package_folder)
    _SANDBOX.install()
    return _SANDBOX


def _worker(folder: Path, root: Path | None, timeout_s: float, memory_mb: int) -> int:
    """Set the limits, install the sandbox, verify, and print the report as the last line of
    stdout (the package's own prints go to stderr)."""
    sys.dont_write_bytecode = True
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="envfactory-verify-"))
        for name, sub in (("HOME", "home"), ("TMPDIR", "tmp")):
            (root / sub).mkdir()
            os.environ[name] = str(root / sub)
        os.environ["ENVFACTORY_CACHE"] = "off"
        tempfile.tempdir = str(root / "tmp")
    root = root.resolve()
    os.chdir(root)
    report_stream = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout = sys.stderr
    _PROGRESS.stream = sys.stderr
    notes = set_limits(timeout_s, memory_mb)
    install_sandbox(root, folder)
    start = time.perf_counter()
    try:
        report = verify_in_process(folder)
    except BaseException as exc:  # noqa: BLE001 - SystemExit from a tool included: report it
        report = VerifyReport(
            package=str(folder),
            passed=False,
            stages=dict.fromkeys(STAGES, 0) | {"sandbox": 1},
            failures=[
                VerifyFailure(
                    stage="sandbox",
                    subject=_PROGRESS.subject,
                    detail=f"verification aborted during {_PROGRESS.stage}: {_describe(exc)}",
                )
            ],
            seconds=round(time.perf_counter() - start, 3),
        )
    report.notes = notes + report.notes
    report_stream.write(report.model_dump_json() + "\n")
    report_stream.flush()
    return 0 if report.passed else 1


# ----- the checks ----------------------------------------------------------------------------
def verify_in_process(folder: str | Path) -> VerifyReport:
    """Run every check in this process (no limits unless `install_sandbox` ran here; a folder
    already loaded in this process is not re-imported). The worker calls it."""
    return _Verifier(Path(folder).resolve()).run()


class _Verifier:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stages = dict.fromkeys(STAGES, 0)
        self.failures: list[VerifyFailure] = []
        self.notes: list[str] = []
        self.tools_valid: dict[str, int] = {}
        self.tools_invalid: dict[str, int] = {}

    def fail(self, stage: str, subject: str, detail: str) -> None:
        self.failures.append(VerifyFailure(stage=stage, subject=subject, detail=detail))

    def run(self) -> VerifyReport:
        start = time.perf_counter()
        try:
            package = self.load()
            if package is not None:
                self.check_tools(package)
                self.check_tasks(package)
                self.check_env(package)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a tool's SystemExit, a MemoryError...
            self.fail(
                "sandbox",
                _PROGRESS.subject,
                f"verification aborted during {_PROGRESS.stage}: {_describe(exc)}",
            )
        self.check_sandbox()
        return VerifyReport(
            package=str(self.folder),
            passed=not self.failures,
            stages=self.stages,
            failures=self.failures,
            seconds=round(time.perf_counter() - start, 3),
            tools_valid=self.tools_valid,
            tools_invalid=self.tools_invalid,
            notes=self.notes,
        )

    # ----- load ---------------------------------------------------------------------------
    def load(self) -> EnvPackage | None:
        """The package with its template, or None when it cannot load (reported)."""
        _PROGRESS.enter("load", "package")
        self.stages["load"] += 1
        try:
            package = load_package(str(self.folder))
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            self.fail("load", "package", f"cannot load: {_describe(exc)}")
            return None
        _PROGRESS.enter("load", "schema.sql + seed.py")
        self.stages["load"] += 1
        try:
            templates = package.member_templates()
            rebuilt = package.build_templates()
        except Exception as exc:  # noqa: BLE001
            self.fail("load", "schema.sql + seed.py", f"cannot build: {_describe(exc)}")
            return None
        checks = (
            ("integrity_check", "PRAGMA integrity_check", [("ok",)]),
            ("foreign_key_check", "PRAGMA foreign_key_check", []),
            ("foreign_keys", "PRAGMA foreign_keys", [(1,)]),
            ("ignore_check_constraints", "PRAGMA ignore_check_constraints", [(0,)]),
        )
        for name, template in templates.items():
            fresh = rebuilt[name]
            for check, sql, expected in checks:
                self.stages["load"] += 1
                found = fresh.execute(sql).fetchall()
                if found != expected:
                    detail = f"{sql} gave {_summary(found[:5], 400)}, not {expected}"
                    self.fail("load", check if len(templates) == 1 else f"{name}: {check}", detail)
            self.stages["load"] += 1
            differ = [
                table
                for table in user_tables(template)
                if table_digest(template, table) != table_digest(fresh, table)
            ]
            if differ or user_tables(template) != user_tables(fresh):
                self.fail(
                    "load",
                    "seed.py" if len(templates) == 1 else f"{name}: seed.py + link.py",
                    f"the seed is not deterministic: a second build differs in {differ}",
                )
            fresh.close()
        return package

    # ----- tools --------------------------------------------------------------------------
    def check_tools(self, package: EnvPackage) -> None:
        """Valid calls (each task's ground truth, then arguments sampled from the seed data)
        succeed; invalid ones raise `ToolError` and leave no trace."""
        probe = _Probe(package)
        samplers = {name: _Sampler(t) for name, t in package.member_templates().items()}
        self.tools_valid = dict.fromkeys(package.tools, 0)
        self.tools_invalid = dict.fromkeys(package.tools, 0)
        good: dict[str, dict[str, Any]] = {}  # tool -> arguments of a call that succeeded
        covered = self._ground_truth_calls(package, probe, good)
        for tool in package.tools.values():
            sampler = samplers[getattr(tool, "member", package.name)]
            self._sampled_calls(tool, probe, sampler, good, covered)
        for tool in package.tools.values():
            sampler = samplers[getattr(tool, "member", package.name)]
            base = good.get(tool.name) or _placeholders(tool)
            for case in _invalid_cases(tool, base, sampler.key_columns, sampler.plain_columns):
                _PROGRESS.enter("tools", tool.name)
                self.stages["tools"] += 1
                self.tools_invalid[tool.name] += 1
                outcome = probe.call(tool, case.arguments)
                problem = outcome.invalid_problem(tool, case, sampler.primary)
                if problem:
                    self.fail("tools", tool.name, f"invalid call ({case.label}): {problem}")
        probe.close()

    def _ground_truth_calls(
        self, package: EnvPackage, probe: _Probe, good: dict[str, dict[str, Any]]
    ) -> set[str]:
        """Replay every task's calls in order from the start state; return the tools called."""
        covered: set[str] = set()
        for task in package.tasks:
            probe.fresh()
            for index, call in enumerate(task.calls):
                tool = package.tools.get(call.name)
                if tool is None:
                    self.fail("tools", call.name, f"task {task.id} call {index}: no such tool")
                    break
                covered.add(tool.name)
                _PROGRESS.enter("tools", f"{tool.name} (task {task.id})")
                self.stages["tools"] += 1
                problem = probe.call(tool, call.arguments, fresh=False).problem(tool)
                if problem:
                    where = f"task {task.id} call {index} (ground truth)"
                    self.fail("tools", tool.name, f"{where}: {problem}")
                    break
                self.tools_valid[tool.name] += 1
                good.setdefault(tool.name, dict(call.arguments))
        return covered

    def _sampled_calls(
        self,
        tool: Tool,
        probe: _Probe,
        sampler: _Sampler,
        good: dict[str, dict[str, Any]],
        covered: set[str],
    ) -> None:
        """Call the tool with arguments sampled from the seed data: a read must succeed on one
        set, any tool on one valid call in all, and no call may raise anything but ToolError."""
        _PROGRESS.enter("tools", tool.name)
        try:
            samples = sampler.samples(tool)
        except Unsampleable as exc:
            if tool.name not in covered:
                self.notes.append(
                    f"{tool.name}: never called with valid arguments (no task calls it, and {exc})"
                )
            return
        succeeded, last_error, crashed = 0, "", False
        for arguments in samples:
            self.stages["tools"] += 1
            outcome = probe.call(tool, arguments)
            problem = outcome.problem(tool)
            if not problem:
                succeeded += 1
                self.tools_valid[tool.name] += 1
                good.setdefault(tool.name, arguments)
                continue
            last_error = f"{_summary(arguments)} -> {problem}"
            if not isinstance(outcome.error, ToolError) or outcome.misdeclared(tool):
                crashed = True
                self.fail("tools", tool.name, f"sampled call {last_error}")
        if crashed:
            return
        member = getattr(tool, "member", None)
        if member and tool.name not in covered and not self.tools_valid[tool.name]:
            self.notes.append(
                f"{tool.name}: no composite task calls it and no sampled call succeeded (last: "
                f"{last_error}); its valid calls are verified with its package, {member}"
            )
            return
        if tool.kind != "write" and not succeeded:
            self.fail(
                "tools",
                tool.name,
                f"no sampled call succeeded ({len(samples)} tried; last: {last_error})",
            )
        elif not self.tools_valid[tool.name]:
            self.fail("tools", tool.name, f"no valid call succeeded (last: {last_error})")

    # ----- tasks --------------------------------------------------------------------------
    def check_tasks(self, package: EnvPackage) -> None:
        """Every task passes the per-task checker (replay, outputs, oracle, collateral...)."""
        _PROGRESS.enter("tasks", "checker")
        try:
            report = check_package(package)
        except Exception as exc:  # noqa: BLE001 - a crash of the checker is a finding too
            self.stages["tasks"] += 1
            self.fail("tasks", "*", f"the checker crashed: {_describe(exc)}")
            return
        self.stages["tasks"] += sum(report.checks_run.values())
        for problem in report.problems:
            self.fail("tasks", problem.task_id, f"[{problem.check}] {problem.detail}")
        self.notes += [f"checker: {note}" for note in report.notes]

    # ----- env checker --------------------------------------------------------------------
    def check_env(self, package: EnvPackage) -> None:
        """The package registers under a temporary id, `gym.make` builds it, and Gymnasium's
        env checker passes on it (its warnings become notes)."""
        _PROGRESS.enter("env_checker", package.config.gym_id)
        env_id = f"envfactory-verify/{package.config.id}-v{package.config.version}"
        self.stages["env_checker"] += 1
        try:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"package": str(self.folder)})
            env = gym.make(env_id)
        except Exception as exc:  # noqa: BLE001
            self.fail("env_checker", env_id, f"cannot register and make: {_describe(exc)}")
            gym.registry.pop(env_id, None)
            return
        self.stages["env_checker"] += 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_env(env.unwrapped, skip_render_check=True)
            self.notes += [f"env checker: {w.message}" for w in caught]
        except Exception as exc:  # noqa: BLE001
            self.fail("env_checker", env_id, f"check_env failed: {_describe(exc)}")
        finally:
            with contextlib.suppress(Exception):
                env.close()
            gym.registry.pop(env_id, None)

    # ----- sandbox ------------------------------------------------------------------------
    def check_sandbox(self) -> None:
        """One failure per (culprit, event) the sandbox blocked."""
        if _SANDBOX is None:
            self.notes.append("sandbox not installed: the checks ran in-process without limits")
            return
        self.stages["sandbox"] += 1
        grouped: dict[tuple[str, str], list[Violation]] = {}
        for violation in _SANDBOX.violations:
            grouped.setdefault((violation.subject, violation.event), []).append(violation)
        for (subject, event), found in grouped.items():
            first = found[0]
            during = first.stage + (f" ({first.subject})" if first.subject != subject else "")
            times = f", {len(found)} times" if len(found) > 1 else ""
            self.fail(
                "sandbox",
                subject,
                f"blocked {event} {first.arguments} at {first.where}, during {during}{times}",
            )


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 400 else text[:397] + "..."


# ----- calling tools -------------------------------------------------------------------------
@dataclass
class _Outcome:
    """One call: its result or exception, the episode's diff after it, and whether it wrote."""

    result: Any
    error: BaseException | None
    diff: dict[str, Any]
    wrote: bool
    fk_violations: list[Any] = field(default_factory=list)

    def misdeclared(self, tool: Tool) -> str:
        """Why a tool not declared kind='write' must be ('' if it did not write)."""
        if tool.kind == "write" or not self.wrote:
            return ""
        text = f"declared kind={tool.kind!r} but changed the database"
        if self.error is not None:  # rolled back here, but ToolUseEnv gives reads no savepoint
            text += f" before raising {type(self.error).__name__} (in an episode the change stays)"
        return text

    def problem(self, tool: Tool) -> str:
        """Why a call meant to be valid did not succeed cleanly ('' if it did)."""
        if self.misdeclared(tool):
            return self.misdeclared(tool)
        if self.error is not None:
            return _describe(self.error)
        if self.fk_violations:
            return f"left foreign-key violations: {_summary(self.fk_violations[:5])}"
        if not isinstance(self.result, str):
            try:
                json.dumps(self.result, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                return f"returned a value that is not JSON-serializable ({_describe(exc)})"
        return ""

    def invalid_problem(self, tool: Tool, case: _Case, primary: dict[str, set[str]]) -> str:
        """Why a call with invalid arguments did not fail cleanly ('' if it did)."""
        if self.error is None and self._created(case, primary):
            return ""
        problems = [self.misdeclared(tool)] if self.misdeclared(tool) else []
        if self.error is None and not case.may_return:
            problems.append("returned normally instead of raising ToolError")
        elif self.error is not None and not isinstance(self.error, ToolError):
            problems.append(f"raised {_describe(self.error)} instead of ToolError")
        if self.diff:
            problems.append(f"left a trace: {_diff_summary(self.diff)}")
        return "; ".join(problems)

    def _created(self, case: _Case, primary: dict[str, set[str]]) -> bool:
        """Whether a write given a new key value added a row under that key: a create (whose
        key the caller chooses), not a lookup that ignored a missing row."""
        if case.new_key is None:
            return False
        name, value = case.new_key, case.arguments[case.new_key]
        return any(
            name in primary.get(table, set()) and row.get(name, value) == value
            for table, entry in self.diff.items()
            for row in entry.get("added", [])
        )


class _Probe:
    """Calls tools the way `envfactory_gym.replay` does, on one database reset between calls."""

    def __init__(self, package: EnvPackage) -> None:
        self.package = package
        self.db = package.new_database()

    def fresh(self) -> None:
        """Back to the start state (a new copy if a tool broke the episode savepoint)."""
        try:
            self.db.reset()
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                self.db.close()
            self.db = self.package.new_database()

    def call(self, tool: Tool, arguments: Any, *, fresh: bool = True) -> _Outcome:
        if fresh:
            self.fresh()
        db = self.db
        changes = db.total_changes
        result, error = None, None
        try:
            validated = tool.validate(arguments)
            with db.call():
                result = tool(db, **validated)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - a tool's SystemExit is a finding too
            error = exc
        try:
            diff = db.diff()
        except sqlite3.Error as exc:
            diff = {"<change log unreadable>": {"error": [str(exc)]}}
        wrote = db.total_changes != changes
        violations = []
        if error is None and wrote:
            violations = db.foreign_key_violations()
        return _Outcome(result, error, diff, wrote, violations)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()


def _diff_summary(diff: dict[str, Any]) -> str:
    parts = []
    for table, entry in diff.items():
        counts = ", ".join(f"{len(rows)} {kind}" for kind, rows in entry.items() if rows)
        parts.append(f"{table} ({counts})")
    return "; ".join(parts)


# ----- arguments -----------------------------------------------------------------------------
SCALARS = frozenset({"string", "integer", "number", "boolean"})
EXAMPLE = re.compile(
    r"""(?:such as|e\.g\.,?|for example,?|example:|like)\s*(['"])(.+?)\1""", re.IGNORECASE
)


def _types(prop: dict[str, Any]) -> set[str]:
    """The JSON types a property schema accepts ('number' implies 'integer' is accepted)."""
    if "type" in prop:
        declared = prop["type"]
        return set(declared) if isinstance(declared, list) else {declared}
    found: set[str] = set()
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in prop.get(key, []):
            found |= _types(branch)
    found |= {_json_type(value) for value in _enum(prop, with_null=True)}
    return found


def _enum(prop: dict[str, Any], *, with_null: bool = False) -> list[Any]:
    values = list(prop.get("enum", []))
    if "const" in prop:
        values.append(prop["const"])
    for key in ("anyOf", "oneOf"):
        for branch in prop.get(key, []):
            values += _enum(branch, with_null=with_null)
    return [v for v in values if with_null or v is not None]


def _branch(prop: dict[str, Any], kind: str) -> dict[str, Any]:
    """The part of a property schema that holds the constraints for values of JSON type `kind`."""
    for key in ("anyOf", "oneOf"):
        for branch in prop.get(key, []):
            if kind in _types(branch) or (kind == "integer" and "number" in _types(branch)):
                return _branch(branch, kind)
    return prop


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _accepts(types: set[str], value: Any) -> bool:
    kind = _json_type(value)
    return kind in types or (kind == "integer" and "number" in types)


def _fits(value: Any, prop: dict[str, Any]) -> bool:
    """Whether a scalar value meets its property's type, bounds, length and pattern."""
    types = _types(prop)
    if types and not _accepts(types, value):
        return False
    schema = _branch(prop, _json_type(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        bounds = (
            ("minimum", lambda b: value >= b),
            ("maximum", lambda b: value <= b),
            ("exclusiveMinimum", lambda b: value > b),
            ("exclusiveMaximum", lambda b: value < b),
        )
        return all(ok(schema[key]) for key, ok in bounds if key in schema)
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0) or len(value) > schema.get("maxLength", 1e18):
            return False
        return "pattern" not in schema or re.search(schema["pattern"], value) is not None
    return True


def _coerce(value: Any, prop: dict[str, Any]) -> Any:
    """A column value as the property's type (SQLite has no booleans), or None if it cannot be."""
    types = _types(prop)
    candidates = [value]
    if "boolean" in types and value in (0, 1):
        candidates.append(bool(value))
    if "string" in types and isinstance(value, int | float) and not isinstance(value, bool):
        candidates.append(str(value))
    return next((c for c in candidates if c is not None and _fits(c, prop)), None)


def _fallback(prop: dict[str, Any], rng: random.Random) -> Any:
    """A value for a scalar property no column supplies: an example from its description, a
    small number, a boolean; None if none fits."""
    types = _types(prop)
    candidates: list[Any] = []
    if "default" in prop:
        candidates.append(prop["default"])
    candidates += list(prop.get("examples", []))
    if "string" in types:
        candidates += [
            m.group(2)
            for m in EXAMPLE.finditer(
                _branch(prop, "string").get("description") or prop.get("description", "")
            )
        ]
        candidates += ["test", "2024-01-01", "2024-01-01T00:00:00"]  # the last for patterns
    if types & {"integer", "number"}:
        schema = _branch(prop, "integer")
        candidates += [1, schema.get("minimum"), schema.get("maximum"), 0]
        if isinstance(schema.get("exclusiveMinimum"), int | float):
            candidates.append(schema["exclusiveMinimum"] + 1)
    if "boolean" in types:
        candidates.append(rng.choice([True, False]))
    return next((c for c in candidates if c is not None and _fits(c, prop)), None)


def _placeholders(tool: Tool) -> dict[str, Any]:
    """Arguments of the right types for a tool nothing valid is known for: the base that the
    invalid cases change one thing in."""
    dummies = {"string": "x", "integer": 1, "number": 1, "boolean": True, "array": [], "object": {}}
    arguments = {}
    properties = tool.parameters.get("properties", {})
    for name in tool.parameters.get("required", []):
        prop = properties.get(name, {})
        enum = _enum(prop)
        kinds = sorted(_types(prop) - {"null"})
        if enum:
            arguments[name] = enum[0]
        elif kinds:
            arguments[name] = dummies.get(kinds[0], "x")
    return arguments


def _wrong_type(prop: dict[str, Any]) -> tuple[bool, Any]:
    """(True, a value of a type the property refuses), or (False, None) for an untyped one."""
    types = _types(prop)
    if not types:
        return False, None
    for candidate in (12345, "wrong-type", True, ["wrong-type"], {"wrong": "type"}):
        if not _accepts(types, candidate):
            return True, candidate
    return False, None


@dataclass
class _Case:
    """One call with invalid arguments."""

    label: str
    arguments: dict[str, Any]
    may_return: bool = False
    """A read may answer a nonexistent key with an empty result instead of a ToolError."""
    new_key: str | None = None
    """The argument given a nonexistent value (a create may take it as the new row's key)."""


def _invalid_cases(
    tool: Tool, base: dict[str, Any], key_columns: set[str], plain_columns: set[str] = frozenset()
) -> Iterator[_Case]:
    """Each required argument missing, each argument of a wrong type, an unknown argument, and
    a nonexistent value for each key-like argument (a key column, or an `*_id` argument that is
    no plain column: a member number is text, not a key), each a change to the valid `base`."""
    properties = tool.parameters.get("properties", {})
    for name in tool.parameters.get("required", []):
        yield _Case(f"missing {name!r}", {k: v for k, v in base.items() if k != name})
    for name, prop in properties.items():
        typed, wrong = _wrong_type(prop)
        if typed:
            yield _Case(f"wrong type for {name!r}: {wrong!r}", {**base, name: wrong})
    yield _Case(f"unknown argument {UNKNOWN_ARGUMENT!r}", {**base, UNKNOWN_ARGUMENT: "x"})
    for name, prop in properties.items():
        id_like = (name == "id" or name.endswith("_id")) and name not in plain_columns
        key_like = name in key_columns or id_like
        if not key_like or _enum(prop):
            continue
        types = _types(prop)
        if "string" in types:
            value: Any = MISSING_TEXT
        elif types & {"integer", "number"}:
            value = MISSING_NUMBER
        else:
            continue
        yield _Case(
            f"nonexistent {name}={value!r}", {**base, name: value}, tool.kind != "write", name
        )


class Unsampleable(Exception):
    """A tool takes a required argument that the seed data cannot supply."""


@dataclass
class _Table:
    name: str
    columns: list[str]
    primary: set[str]
    keys: set[str]
    """Primary-key and foreign-key columns: what rows of different tables are joined on."""
    unique: set[str]
    """Columns that name one row on their own (a lookup by one of them is this table's)."""


def _words(name: str) -> set[str]:
    return {
        w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
        for w in name.lower().split("_")
        if w
    }


class _Sampler:
    """Valid-looking arguments from the seed data: each scalar argument takes the value of a
    column of the same name, from rows that belong together (joined on shared key columns)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.tables: list[_Table] = []
        referenced: dict[str, set[str]] = {}
        for name in user_tables(conn):
            info = conn.execute(f"PRAGMA table_info({quote_name(name)})").fetchall()
            primary = {row[1] for row in info if row[5] > 0}
            keys = set(primary)
            for fk in conn.execute(f"PRAGMA foreign_key_list({quote_name(name)})"):
                keys.add(fk[3])
                if fk[4] is not None:
                    referenced.setdefault(fk[2], set()).add(fk[4])
            unique = set(primary) if len(primary) == 1 else set()
            for index in conn.execute(f"PRAGMA index_list({quote_name(name)})").fetchall():
                columns = conn.execute(f"PRAGMA index_info({quote_name(index[1])})").fetchall()
                if index[2] and len(columns) == 1:
                    unique.add(columns[0][2])
            self.tables.append(_Table(name, [row[1] for row in info], primary, keys, unique))
        for table in self.tables:
            table.keys |= referenced.get(table.name, set())
        self.key_columns = {column for table in self.tables for column in table.keys}
        self.plain_columns = {c for t in self.tables for c in t.columns} - self.key_columns
        self.primary = {table.name: table.primary for table in self.tables}

    def samples(self, tool: Tool) -> list[dict[str, Any]]:
        """Up to `SAMPLES_PER_TOOL` distinct argument sets, the same on every run (seeded with
        random.Random(0)); raises `Unsampleable` naming a required argument it cannot fill."""
        rng = random.Random(0)
        found: dict[str, dict[str, Any]] = {}
        for _ in range(SAMPLES_PER_TOOL):
            arguments = self._sample(tool, rng)
            found.setdefault(json.dumps(arguments, sort_keys=True, default=str), arguments)
        return list(found.values())

    def _sample(self, tool: Tool, rng: random.Random) -> dict[str, Any]:
        properties: dict[str, Any] = tool.parameters.get("properties", {})
        required = set(tool.parameters.get("required", []))
        arguments: dict[str, Any] = {}
        pending: list[str] = []
        for name, prop in properties.items():
            enum = _enum(prop)
            if enum:
                arguments[name] = rng.choice(enum)
            elif _types(prop) & SCALARS:
                pending.append(name)
            elif name in required:
                raise Unsampleable(f"its argument {name!r} is an array or object")
        known: dict[str, Any] = {}
        remaining = [name for name in pending if any(name in t.columns for t in self.tables)]
        tool_words = _words(tool.name)
        while remaining:
            table = max(
                self.tables,
                key=lambda t: (
                    len(set(remaining) & set(t.columns)),
                    len(set(remaining) & t.unique),
                    len(tool_words & _words(t.name)),
                    len(set(remaining) & t.primary),
                ),
            )
            columns = [name for name in remaining if name in table.columns]
            row = self._row(table, columns, known, rng)
            remaining = [name for name in remaining if name not in columns]
            if row is None:
                continue
            known |= row
            for name in columns:
                value = _coerce(row[name], properties[name])
                if value is not None:
                    arguments[name] = value
        for name in pending:
            if name in arguments:
                continue
            value = _fallback(properties[name], rng)
            if value is not None:
                arguments[name] = value
            elif name in required:
                raise Unsampleable(f"no column or example fits its argument {name!r}")
        return {name: arguments[name] for name in properties if name in arguments}

    def _row(
        self, table: _Table, columns: list[str], known: dict[str, Any], rng: random.Random
    ) -> dict[str, Any] | None:
        """A random row with the columns non-null, joined to the rows chosen so far when it
        shares a key column with them (else any row)."""
        present = [f"{quote_name(c)} IS NOT NULL" for c in columns]
        joins = [
            c
            for c in table.columns
            if c in table.keys and c not in columns and known.get(c) is not None
        ]
        for use in [joins, []] if joins else [[]]:
            where = " AND ".join(present + [f"{quote_name(c)} = ?" for c in use]) or "1"
            params = [known[c] for c in use]
            count = self.conn.execute(
                f"SELECT count(*) FROM {quote_name(table.name)} WHERE {where}", params
            ).fetchone()[0]
            if count:
                cursor = self.conn.execute(
                    f"SELECT * FROM {quote_name(table.name)} WHERE {where} LIMIT 1 OFFSET ?",
                    [*params, rng.randrange(count)],
                )
                values = cursor.fetchone()
                return dict(zip([d[0] for d in cursor.description], values, strict=True))
        return None


# ----- reporting and the command line --------------------------------------------------------
def format_report(report: VerifyReport) -> str:
    """A short human summary: one line per stage with its checks, then each failure."""
    verdict = "PASSED" if report.passed else f"FAILED ({len(report.failures)} failures)"
    lines = [f"{report.package}: {verdict} in {report.seconds:.1f} s"]
    failed: dict[str, int] = {}
    for failure in report.failures:
        failed[failure.stage] = failed.get(failure.stage, 0) + 1
    for stage in STAGES:
        ran = report.stages.get(stage, 0)
        lines.append(f"  {stage:<12} {ran:>5} checks, {failed.get(stage, 0)} failed")
    if report.tools_valid:
        lines.append(
            f"  tools: {sum(report.tools_valid.values())} valid calls succeeded, "
            f"{sum(report.tools_invalid.values())} invalid calls tried, over "
            f"{len(report.tools_valid)} tools"
        )
    lines += [f"  FAIL [{f.stage}] {f.subject}: {f.detail}" for f in report.failures]
    lines += [f"  note: {note}" for note in report.notes]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m envfactory_gym.generators.verify DIR [--json PATH]`: exit 1 on any failure."""
    parser = argparse.ArgumentParser(
        prog="envfactory verify",
        description="Verify an env package in a sandboxed subprocess: load, tools, tasks, "
        "Gymnasium's env checker.",
    )
    parser.add_argument("folder", type=Path, help="the env package folder")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds (default 300)")
    parser.add_argument("--memory-mb", type=int, default=4096, help="address space (4096)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.json is not None:
            parser.error("--json is written by the parent process, not by --worker")
        return _worker(args.folder.resolve(), args.root, args.timeout, args.memory_mb)
    report = verify_package(args.folder, timeout_s=args.timeout, memory_mb=args.memory_mb)
    print(format_report(report))
    if args.json is not None:
        args.json.write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
