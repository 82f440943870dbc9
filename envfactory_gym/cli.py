"""`envfactory`: list, evaluate, check and benchmark envs; generate, verify, import, graph."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import gymnasium as gym

import envfactory_gym
from envfactory_gym.package import load_package
from envfactory_gym.registry import package_name


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for env_id in envfactory_gym.ENV_IDS:
        package = load_package(package_name(env_id))
        if args.domain and package.config.domain != args.domain:
            continue
        writes = sum(tool.kind == "write" for tool in package.tools.values())
        splits = {s: len(package.tasks_for(s)) for s in ("train", "test")}
        rows.append((package.config.domain, env_id, len(package.tools), writes,
                     len(package.tasks), splits))  # fmt: skip
    rows.sort()
    if args.markdown:
        print(markdown_suite([row[1] for row in rows]))
        return 0
    if args.json:
        print(json.dumps([
            {"env": e, "domain": d, "tools": t, "writes": w, "tasks": n, "splits": s}
            for d, e, t, w, n, s in rows
        ], indent=2))  # fmt: skip
        return 0
    if not rows:
        print(f"no env in domain {args.domain!r}", file=sys.stderr)
        return 2
    print(f"{'domain':<14}{'env':<30}{'tools':>6}{'writes':>7}{'tasks':>7}  train/test")
    for domain, env_id, tools, writes, tasks, splits in rows:
        print(f"{domain:<14}{env_id:<30}{tools:>6}{writes:>7}{tasks:>7}  "
              f"{splits['train']}/{splits['test']}")  # fmt: skip
    domains = sorted({row[0] for row in rows})
    print(f"{len(rows)} envs in {len(domains)} domains: " + ", ".join(
        f"{d} {sum(r[0] == d for r in rows)}" for d in domains
    ))  # fmt: skip
    return 0


def markdown_suite(env_ids: list[str]) -> str:
    """The README's counts by domain, then its table of environments, both from the registry."""
    return markdown_counts(env_ids) + "\n\n" + markdown_table(env_ids)


KINDS = ("read", "write", "multi_write", "refusal", "handoff")


def markdown_counts(env_ids: list[str]) -> str:
    """Per domain: packages, tools (of which write), and tasks by kind; a composite's tasks all
    span services and are counted as cross-service too."""
    totals: dict[str, dict[str, int]] = {}
    for env_id in env_ids:
        package = load_package(package_name(env_id))
        row = totals.setdefault(package.config.domain, dict.fromkeys(
            ("packages", "tools", "writes", "tasks", *KINDS, "cross"), 0))  # fmt: skip
        row["packages"] += 1
        row["tools"] += len(package.tools)
        row["writes"] += sum(tool.kind == "write" for tool in package.tools.values())
        row["tasks"] += len(package.tasks)
        for task in package.tasks:
            row[task.kind] += 1
        if package.config.members:
            row["cross"] += len(package.tasks)
    lines = [
        "| domain | packages | tools (writes) | tasks | read | write | multi-write | refusal "
        "| handoff | cross-service |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    every = {
        key: sum(row[key] for row in totals.values()) for key in next(iter(totals.values()), {})
    }
    for domain, row in [*sorted(totals.items()), (f"**all {len(totals)} domains**", every)]:
        counts = " | ".join(f"{row[k]:,}" for k in (*KINDS, "cross"))
        lines.append(
            f"| {domain} | {row['packages']} | {row['tools']:,} ({row['writes']:,}) | "
            f"{row['tasks']:,} | {counts} |"
        )
    return "\n".join(lines)


def markdown_table(env_ids: list[str]) -> str:
    """The README's table of environments, made from the registry (a test keeps them equal)."""
    from envfactory_gym.database import quote_name, user_tables

    lines = [
        "| id | domain | tools (writes) | tasks (train/test) | rows | source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    packages = {env_id: load_package(package_name(env_id)) for env_id in env_ids}
    for env_id in sorted(env_ids, key=lambda e: (packages[e].config.domain, e)):
        package = packages[env_id]
        writes = sum(tool.kind == "write" for tool in package.tools.values())
        train, test = (len(package.tasks_for(s)) for s in ("train", "test"))
        count = sum(conn.execute(f"SELECT count(*) FROM {quote_name(t)}").fetchone()[0]
                    for conn in package.member_templates().values()
                    for t in user_tables(conn))  # fmt: skip
        source = "spec, verified" if (package.folder / "spec.yaml").is_file() else "hand-written"
        if package.config.members:
            source = "composite of " + ", ".join(package.config.members)
        lines.append(
            f"| `{env_id}` | {package.config.domain} | {len(package.tools)} ({writes}) | "
            f"{len(package.tasks)} ({train}/{test}) | {count:,} | {source} |"
        )
    return "\n".join(lines)


def cmd_eval(args: argparse.Namespace) -> int:
    import functools

    from envfactory_gym.agents import make_agent
    from envfactory_gym.evaluation import evaluate, run_evaluation

    env_ids = _matching_envs(args.env)
    if not env_ids:
        print(f"envfactory eval: no registered env matches {args.env!r} "
              "(`envfactory list` shows them)", file=sys.stderr)  # fmt: skip
        return 2
    kwargs = {"seed": args.seed} if args.agent == "random" else {}
    agent = make_agent(args.agent, **kwargs)  # a bad spec fails here, before any work
    workers = args.workers if args.workers is not None else (0 if args.ray is not False else 1)
    user_factory = None
    if args.user != "scripted":
        from envfactory_gym.users import llm_user_from_spec

        llm_user_from_spec(args.user)  # a bad spec fails here, before any work
        user_factory = functools.partial(llm_user_from_spec, args.user)
    if args.out or args.trials > 1 or workers > 1 or args.ray is not False or user_factory:
        out = Path(args.out or "eval-out")
        try:
            report = run_evaluation(
                env_ids, functools.partial(make_agent, args.agent, **kwargs), out,
                agent_name=args.agent, split=args.split, trials=args.trials, workers=workers,
                seed=args.seed, ray=args.ray, user_factory=user_factory,
            )  # fmt: skip
        except (ConnectionError, ImportError) as exc:  # Ray missing, or its address unreachable
            if args.ray is False:
                raise
            print(f"envfactory eval: {exc}", file=sys.stderr)
            return 2
        overall, k = report["overall"], args.trials
        print(
            f"{len(env_ids)} env(s), {args.agent}, split={args.split}, {k} trial(s): pass@1 "
            f"{overall['pass@1']:.3f}, pass^{k} {overall['pass^k'][str(k)]['value']:.3f}, mean "
            f"reward {overall['mean_reward']:.3f} over {overall['tasks']} tasks; report in {out}/"
        )
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    one = len(env_ids) == 1
    reports = []
    for env_id in env_ids if one else _progress(env_ids, "eval", "env"):
        report = evaluate(env_id, agent, args.agent, split=args.split, seed=args.seed,
                          progress=one)  # fmt: skip
        reports.append(report)
        if one or report["success_rate"] < 1.0 and args.agent == "oracle":
            print(
                f"{report['env']} {report['agent']} split={report['split']}: "
                f"success {report['success_rate']:.3f}, mean reward {report['mean_reward']:.3f} "
                f"over {report['tasks']} tasks"
            )
    if not one:
        summary = suite_summary(reports)
        print(
            f"{summary['envs']} envs, {args.agent}, split={args.split}: success "
            f"{summary['success_rate']:.3f}, mean reward {summary['mean_reward']:.3f} over "
            f"{summary['tasks']} tasks (per env: min {summary['min_success_rate']:.3f}, "
            f"max {summary['max_success_rate']:.3f}) in {summary['seconds']:.1f} s"
        )
    if args.json:
        data = reports[0] if one else {**suite_summary(reports), "reports": reports}
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from envfactory_gym.export import export_tasks

    env_ids = _matching_envs(args.export_env)
    if not env_ids:
        print(f"envfactory export: no registered env matches {args.export_env!r}", file=sys.stderr)
        return 2
    rows = export_tasks(env_ids, args.out, args.format, args.split)
    print(f"wrote {rows} tasks of {len(env_ids)} env(s) to {args.out}")
    return 0


def _matching_envs(pattern: str) -> list[str]:
    """The registered gym ids a shell-style pattern ('envfactory/*') names, or the id itself."""
    import fnmatch

    if not any(ch in pattern for ch in "*?["):
        return [pattern] if pattern in gym.registry else []
    return sorted(fnmatch.filter(envfactory_gym.ENV_IDS, pattern))


def _progress(items: list[str], desc: str, unit: str) -> Any:
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit=unit, file=sys.stderr)


def suite_summary(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over several envs' evaluation reports: every task counts once."""
    tasks = sum(r["tasks"] for r in reports) or 1
    rates = [r["success_rate"] for r in reports]
    return {
        "envs": len(reports),
        "tasks": sum(r["tasks"] for r in reports),
        "success_rate": sum(r["success_rate"] * r["tasks"] for r in reports) / tasks,
        "mean_reward": sum(r["mean_reward"] * r["tasks"] for r in reports) / tasks,
        "min_success_rate": min(rates, default=0.0),
        "max_success_rate": max(rates, default=0.0),
        "seconds": sum(r["seconds"] for r in reports),
    }


def cmd_check(args: argparse.Namespace) -> int:
    from envfactory_gym.checker import check_package, format_report

    reports = []
    for env in args.envs or envfactory_gym.ENV_IDS:
        report = check_package(env)
        print(format_report(report))
        reports.append(report)
    if args.json:
        Path(args.json).write_text(json.dumps([r.model_dump() for r in reports], indent=2))
    return 0 if all(r.ok for r in reports) else 1


def cmd_bench(args: argparse.Namespace) -> int:
    from envfactory_gym.bench import (
        bench,
        bench_suite,
        bench_vector,
        format_table,
        plot_scales,
        require_matplotlib,
    )

    if args.png and (args.suite or args.vector):
        print("error: --png draws the scale table; leave out --suite and --vector", file=sys.stderr)
        return 2
    if args.png:
        require_matplotlib()  # before minutes of measuring, not after
    if args.suite:
        result = bench_suite()
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            print(
                f"{result['envs']} envs: import envfactory_gym {result['import_s']:.3f} s; one "
                f"instance of every env made and reset in {result['make_and_reset_all_s']:.1f} s; "
                f"process memory {result['rss_with_every_env_mib']:.0f} MiB "
                f"({result['rss_after_import_mib']:.0f} MiB after the import)"
            )
        return 0
    if args.vector:
        result = bench_vector(
            args.env, args.vector, args.num_envs, episodes=args.episodes,
            num_workers=args.num_workers, step_here=not args.no_step_here,
        )  # fmt: skip
        if args.json:
            print(json.dumps(result, indent=2))
        else:
            where = ""
            if args.vector == "pool" and args.num_workers == 0:
                where = ", in this process"
            elif args.vector == "pool":
                here = " + this process" if result["step_here"] else ""
                where = f", {args.num_workers} worker{'s' * (args.num_workers > 1)}{here}"
            print(
                f"{result['env']} {result['mode']} x{result['num_envs']}{where}: "
                f"{result['vector_episodes_per_s']:,.0f} episodes/s vs "
                f"{result['single_episodes_per_s']:,.0f} for one env ({result['speedup']}x)"
            )
        return 0
    results = [
        bench(args.env, scale=scale, repeats=args.repeats, episodes=args.episodes,
              rounds=args.rounds, memory=not args.no_memory)
        for scale in args.scale
    ]  # fmt: skip
    if args.png:
        plot_scales(results, args.png)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
        return 0
    print(f"{args.env}, one core; best of {args.rounds} rounds of {args.repeats}-run medians")
    print(format_table(results))
    if args.png:
        print(f"chart: {args.png}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from envfactory_gym.generators.emit import generate_package

    llm = None
    if args.llm_url:
        from envfactory_gym.generators.llm import LLMBackend

        llm = LLMBackend(base_url=args.llm_url, model=args.llm_model)
    report = generate_package(
        args.spec, args.out, tasks=args.tasks, verify=not args.no_verify, seed=args.seed,
        llm=llm, config=_synthesis_config(args),
    )  # fmt: skip
    for gap in report.llm_filled:
        print(f"  filled by the LLM: {gap}")
    for tool, how in sorted(report.inferred.items()):
        print(f"  inferred {tool}: {how}")
    for item in report.defaulted:
        print(f"  defaulted (needs review): {item}")
    dropped = ", ".join(f"{why} {n}" for why, n in sorted(report.rejected.items())) or "none"
    verified = {True: "verified", False: "NOT verified", None: "not verified (--no-verify)"}
    print(f"wrote {report.package}: {report.tasks} tasks ({verified[report.verified]}); "
          f"candidates dropped: {dropped}")  # fmt: skip
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    import time
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from tqdm import tqdm

    from envfactory_gym.generators.verify import format_report, verify_package

    folders = [Path(f) for f in args.folders] + _suite_folders(args)
    if not folders:
        print("envfactory verify: name package folders, or use --all", file=sys.stderr)
        return 2
    start = time.perf_counter()
    reports = []
    workers = args.workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:  # each verification is a subprocess
        futures = {pool.submit(verify_package, f, timeout_s=args.timeout): f for f in folders}
        done = as_completed(futures)
        if len(folders) > 1:
            done = tqdm(done, total=len(folders), desc="verify", unit="package", file=sys.stderr)
        for future in done:
            folder, report = futures[future], future.result()
            reports.append(report)
            if report.passed:
                _mark_verified(folder, report.seconds)
            if len(folders) == 1 or not report.passed:
                print(format_report(report))
    failed = sorted(r.package for r in reports if not r.passed)
    seconds = time.perf_counter() - start
    if len(folders) > 1:
        summary = f"{len(reports) - len(failed)} of {len(reports)} packages passed"
        summary += f" in {seconds:.1f} s with {workers} workers"
        print(summary + (f"; failed: {', '.join(failed)}" if failed else ""))
    if args.json:
        data = reports[0].model_dump() if len(reports) == 1 else {
            "packages": len(reports), "passed": len(reports) - len(failed), "failed": failed,
            "seconds": round(seconds, 1), "workers": workers,
            "reports": [r.model_dump() for r in sorted(reports, key=lambda r: r.package)],
        }  # fmt: skip
        Path(args.json).write_text(json.dumps(data, indent=2))
    return 0 if not failed else 1


def _suite_folders(args: argparse.Namespace) -> list[Path]:
    """The shipped packages `--all` names: every one, or a rotating `--sample` plus those
    changed since `--changed-since` (for CI)."""
    if not args.all:
        return []
    import random

    from envfactory_gym.package import builtin_envs_dir

    root = builtin_envs_dir()
    every = sorted(
        p for p in root.iterdir() if p.name.isidentifier() and (p / "env.toml").is_file()
    )
    if args.sample is None:
        return every
    chosen = set(random.Random(args.seed).sample(every, min(args.sample, len(every))))
    if args.changed_since:
        chosen |= {root / name for name in _changed_packages(args.changed_since)} & set(every)
    from envfactory_gym.package import read_config

    for folder in every:  # a composite is re-verified when one of its members is
        if {root / m for m in read_config(folder).members} & chosen:
            chosen.add(folder)
    return sorted(chosen)


def _changed_packages(revision: str) -> set[str]:
    """Names of the env packages with files changed since `revision` (git); none if git cannot
    tell (a shallow clone), with a warning."""
    import subprocess

    done = subprocess.run(
        ["git", "diff", "--name-only", revision, "--", "envs"], capture_output=True, text=True
    )
    if done.returncode != 0:
        print(f"envfactory verify: cannot diff against {revision!r}; sample only", file=sys.stderr)
        return set()
    return {line.split("/")[1] for line in done.stdout.splitlines() if line.count("/") >= 2}


def _mark_verified(folder: Path, seconds: float) -> None:
    """Write verified.json into a generated package that passed, unless it already matches."""
    if not (folder / "spec.yaml").is_file():
        return
    from envfactory_gym.generators.emit import VERIFIED, package_hash, write_verified_marker
    from envfactory_gym.generators.spec import load_spec

    marker = folder / VERIFIED
    if marker.is_file() and json.loads(marker.read_text()).get("hash") == package_hash(folder):
        return  # unchanged since it was verified: leave the record (and the checkout) as it is
    write_verified_marker(folder, seconds, load_spec(folder / "spec.yaml"))


def cmd_graph(args: argparse.Namespace) -> int:
    from envfactory_gym.generators.graph import (
        build_graph,
        draw_graph_png,
        graph_summary,
        write_graph_json,
    )
    from envfactory_gym.generators.spec import load_spec

    graph = build_graph(load_spec(_spec_path(args.folder)))
    if args.json:
        write_graph_json(graph, Path(args.json))
    if args.png:
        draw_graph_png(graph, Path(args.png))
    summary = graph_summary(graph)
    print(", ".join(f"{k} {v}" for k, v in summary.items()))
    return 0


def cmd_tasks(args: argparse.Namespace) -> int:
    registered = args.env.startswith("envfactory/")
    package = load_package(package_name(args.env) if registered else args.env)
    tasks = [t for t in package.tasks_for(args.split) if args.kind in (None, t.kind)]
    for task in tasks:
        if args.json:
            print(
                json.dumps(
                    {
                        "id": task.id,
                        "kind": task.kind,
                        "split": task.split,
                        "calls": len(task.calls),
                        "instruction": task.instruction,
                    }
                )
            )
        else:
            print(f"{task.id:<52} {task.kind:<12} {task.split:<6} {task.instruction[:60]}")
    if not args.json:
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(Counter(t.kind for t in tasks).items()))
        print(f"{len(tasks)} tasks of {package.config.gym_id}: {kinds}", file=sys.stderr)
    return 0


def cmd_play(args: argparse.Namespace) -> int:
    from envfactory_gym import play

    env_id = args.play_env
    if env_id not in gym.registry:
        raise KeyError(f"unknown env {env_id!r} (`envfactory list` shows them)")
    if args.role == "user":
        from envfactory_gym.agents import make_agent

        play.play_as_user(env_id, make_agent(args.agent), args.task)
    else:
        play.play_as_agent(env_id, args.task)
    return 0


def cmd_synthesize(args: argparse.Namespace) -> int:
    from envfactory_gym.generators.emit import resynthesize_tasks

    report = resynthesize_tasks(
        Path(args.folder), args.n, seed=args.seed, config=_synthesis_config(args)
    )
    dropped = ", ".join(f"{why} {n}" for why, n in sorted(report.rejected.items())) or "none"
    kept = f" beside {report.kept} hand-written ones" if report.kept else ""
    print(f"wrote {report.tasks} tasks{kept} to {report.package}; candidates dropped: {dropped}")
    if report.tasks < args.n:
        print(f"  (asked for {args.n}: the spec's intents and rows give no more distinct tasks)")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from envfactory_gym.generators import importers

    if args.format == "tau2":
        from envfactory_gym.generators.importers.tau2 import cmd_import_tau2

        return cmd_import_tau2(args)
    result = importers.import_mcp(args.source) if args.format == "mcp" else (
        importers.import_openapi(args.source)
    )  # fmt: skip
    importers.write_spec(result, Path(args.out))
    print(f"wrote {args.out}: {len(result.spec.entities)} entities, {len(result.spec.tools)} "
          f"tools, {len(result.spec.intents)} intents")  # fmt: skip
    for line in result.review:
        print(f"  needs review: {line}")
    return 0


def _synthesis_config(args: argparse.Namespace) -> Any:
    from envfactory_gym.generators.synth import SynthesisConfig

    knobs = {"max_calls": args.max_calls, "max_depth": args.max_depth}
    if args.mix:
        knobs["mix"] = SynthesisConfig.parse_mix(args.mix)
    return SynthesisConfig.model_validate(knobs)


def _add_synthesis_knobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mix", metavar="KIND=SHARE,...", help="task kinds and their shares, e.g. "
                   "read=0.5,write=0.3,refusal=0.2 (default: read=0.35,write=0.3,"
                   "multi_write=0.15,refusal=0.2)")  # fmt: skip
    p.add_argument("--max-calls", type=int, default=8, help="longest ground truth kept (8)")
    p.add_argument("--max-depth", type=int, default=3,
                   help="producer steps the graph walk may take back from a goal (3)")  # fmt: skip


def _spec_path(folder: str) -> Path:
    path = Path(folder)
    spec = path if path.suffix in (".yaml", ".yml") else path / "spec.yaml"
    if not spec.is_file():
        raise FileNotFoundError(f"no spec at {spec} (generated packages keep theirs in spec.yaml)")
    return spec


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="envfactory", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered envs by domain, with tool and task counts")
    p.add_argument("--domain", help="only this domain (e.g. finance)")
    p.add_argument("--markdown", action="store_true", help="the README's table of envs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_list)
    p = sub.add_parser("eval", help="run an agent over an env's tasks")
    p.add_argument("--env", default="envfactory/Airline-v0",
                   help="a gym id, or a pattern: 'envfactory/*' is the whole suite")  # fmt: skip
    p.add_argument(
        "--agent",
        default="oracle",
        help="oracle | random | hf:PATH_OR_NAME[?opts] "
        "| openai:MODEL@URL[?opts] | package.module:Class (see envfactory_gym.agents)",
    )
    p.add_argument(
        "--user",
        default="scripted",
        help="the user simulator: scripted (default), "
        "or an LLM user openai:MODEL@URL[?temperature=..&max_tokens=..&thinking=0]",
    )
    p.add_argument("--split", default="test", choices=["train", "test", "all"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="write the full report here")
    p.add_argument("--trials", type=int, default=1, help="episodes per task, for pass^k (1)")
    p.add_argument("--workers", type=int, default=None,
                   help="episodes in parallel processes (1); with --ray, Ray actors (default: "
                   "one per CPU of the cluster)")  # fmt: skip
    p.add_argument("--out", metavar="DIR", help="write episodes.jsonl (resumable), report.json, "
                   "report.md and PNG plots here")  # fmt: skip
    p.add_argument("--ray", nargs="?", const=True, default=False, metavar="ADDRESS",
                   help="play episodes on a Ray cluster: ADDRESS is auto, HOST:PORT or "
                   "ray://HOST:PORT; without one, RAY_ADDRESS or a cluster `ray start` runs "
                   "here, else a new local Ray (needs the `ray` extra)")  # fmt: skip
    p.set_defaults(fn=cmd_eval)
    p = sub.add_parser("export", help="tasks as a dataset for verl, OpenRLHF or TRL")
    p.add_argument(
        "--env",
        dest="export_env",
        default="envfactory/*",
        help="a gym id or a pattern (default: the whole suite)",
    )
    p.add_argument("--format", choices=["jsonl", "parquet"], default="jsonl")
    p.add_argument("--split", default="train", choices=["train", "test", "all"])
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(fn=cmd_export)
    p = sub.add_parser(
        "check",
        help="hold every task of env packages to the reward contract (exit 1 on a failure)",
        description="For each task: the ground truth replays, its outputs are in the tool "
        "outputs, the oracle scores 1.0, an agent without tools scores 0, one collateral write "
        "scores 0, listing every value seen earns no outputs credit, and a write task is not "
        "satisfied at the start. Per package: no tool statement scans a table.",
    )
    p.add_argument("envs", nargs="*", metavar="ENV", help="gym ids, package names or folders "
                   "(default: every registered env)")  # fmt: skip
    p.add_argument("--json", metavar="PATH", help="write the reports here")
    p.set_defaults(fn=cmd_check)
    p = sub.add_parser("bench", help="time every tool step, reset and reward of an env")
    p.add_argument("--env", default="envfactory/Airline-v0")
    p.add_argument(
        "--scale",
        type=int,
        nargs="+",
        default=[1],
        metavar="N",
        help="database sizes to measure, e.g. --scale 1 10 100 (default: 1)",
    )
    p.add_argument(
        "--vector",
        choices=["sync", "async", "pool"],
        help="measure gym.make_vec episodes/s against one env instead (pool: our EnvPool)",
    )
    p.add_argument("--num-envs", type=int, default=8, help="with --vector (default: 8)")
    p.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="with --vector pool: worker processes besides this one, which steps a share too "
        "(default: 1, two processes in all)",
    )
    p.add_argument(
        "--no-step-here",
        action="store_true",
        help="with --vector pool: only the workers step envs; this process waits",
    )
    p.add_argument("--repeats", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=300)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    p.add_argument("--suite", action="store_true", help="the whole registry instead: import "
                   "time, and memory with one instance of every env (fresh processes)")  # fmt: skip
    p.add_argument("--json", action="store_true")
    p.add_argument("--png", metavar="PATH", help="also draw the step, reset and reward figures "
                   "per scale as a chart here (needs matplotlib)")  # fmt: skip
    p.set_defaults(fn=cmd_bench)
    p = sub.add_parser("generate", help="compile a spec into a verified env package")
    p.add_argument("spec", metavar="SPEC.yaml")
    p.add_argument("--out", required=True, metavar="DIR", help="the package folder to write")
    p.add_argument("--tasks", type=int, default=60, help="tasks to synthesize (default: 60)")
    p.add_argument("--seed", type=int, default=0, help="task sampling seed (default: 0)")
    p.add_argument("--no-verify", action="store_true", help="write without verifying")
    p.add_argument(
        "--llm-url",
        metavar="URL",
        help="optional OpenAI-compatible endpoint "
        "(e.g. http://localhost:8000/v1) to fill flagged gaps and reword instructions",
    )
    p.add_argument("--llm-model", default="default", help="the endpoint's model name")
    _add_synthesis_knobs(p)
    p.set_defaults(fn=cmd_generate)
    p = sub.add_parser("verify", help="verify env packages, each in a sandboxed subprocess")
    p.add_argument("folders", nargs="*", metavar="DIR")
    p.add_argument("--all", action="store_true", help="every shipped package")
    p.add_argument("--sample", type=int, metavar="N", help="with --all: only N of them, chosen "
                   "by --seed (CI verifies a rotating sample)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="which sample (default: 0)")
    p.add_argument("--changed-since", metavar="REV", help="with --sample: also every package "
                   "whose files changed since this git revision")  # fmt: skip
    p.add_argument("--workers", type=int, help="packages verified at once (default: cores)")
    p.add_argument("--json", metavar="REPORT", help="write the report here")
    p.add_argument("--timeout", type=float, default=300, help="seconds each (default: 300)")
    p.set_defaults(fn=cmd_verify)
    p = sub.add_parser("graph", help="the tool-dependency graph of a generated package")
    p.add_argument("folder", metavar="DIR", help="a package folder with spec.yaml, or a spec")
    p.add_argument("--png", metavar="PATH", help="draw it here (needs matplotlib)")
    p.add_argument("--json", metavar="PATH", help="write nodes, edges and a summary here")
    p.set_defaults(fn=cmd_graph)
    p = sub.add_parser("synthesize", help="(re)synthesize a package's tasks from its spec")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--n", type=int, default=200, help="how many (default: 200)")
    p.add_argument("--seed", type=int, default=0)
    _add_synthesis_knobs(p)
    p.set_defaults(fn=cmd_synthesize)
    p = sub.add_parser("tasks", help="list an env's task ids with their kinds and splits")
    p.add_argument("env", metavar="ENV", help="a gym id, package name or folder")
    p.add_argument("--split", default="all", choices=["train", "test", "all"])
    p.add_argument("--kind", choices=["read", "write", "multi_write", "refusal", "handoff"])
    p.add_argument("--json", action="store_true", help="one JSON object per task")
    p.set_defaults(fn=cmd_tasks)
    p = sub.add_parser("play", help="play an env in the terminal, as the agent or as the user")
    p.add_argument("play_env", metavar="ENV_ID")
    p.add_argument("--task", help="a task id (default: the first test task)")
    p.add_argument("--as", dest="role", choices=["agent", "user"], default="agent")
    p.add_argument("--agent", default="oracle", help="with --as user: the agent to answer")
    p.set_defaults(fn=cmd_play)
    p = sub.add_parser(
        "import",
        help="a spec from MCP tool metadata or an OpenAPI document; an env package from a "
        "tau2-bench domain folder",
    )
    p.add_argument("format", choices=["mcp", "openapi", "tau2"])
    p.add_argument("source", metavar="FILE", help="tau2: a domain folder (db.json, tasks.json)")
    p.add_argument("--out", required=True, metavar="SPEC.yaml", help="tau2: the package folder")
    p.add_argument("--env-id", help="tau2: the gym name (default Tau2Airline / Tau2Retail)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="tau2: keep the tasks without running the per-task checker")  # fmt: skip
    p.set_defaults(fn=cmd_import)
    from envfactory_gym.serve import add_serve_parser

    add_serve_parser(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    env = getattr(args, "env", None)
    pattern = args.fn is cmd_eval and any(ch in (env or "") for ch in "*?[")
    if env and env not in gym.registry and not pattern:
        known = ", ".join(envfactory_gym.ENV_IDS)
        print(f"envfactory: unknown env {args.env!r}; registered: {known}", file=sys.stderr)
        return 2
    try:
        return args.fn(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        print(f"envfactory: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
