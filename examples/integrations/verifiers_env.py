"""An envfactory env as a verifiers (v1) env: its tasks, and episodes against a model endpoint.

Run::

    python examples/integrations/verifiers_env.py                 # build the env, list tasks
    python examples/integrations/verifiers_env.py --base-url http://localhost:8000/v1 \\
        --model Qwen/Qwen3-8B --episodes 3                        # e.g. a vLLM server

Episodes run through verifiers' own runner (`Env.run_episode`: its `null` chat harness in a
subprocess, prepared with `uv`, calling the endpoint through verifiers' interception).
"""

from __future__ import annotations

import argparse
import asyncio
import os

import verifiers.v1 as vf

from envfactory_gym.integrations import verifiers as ef_vf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="envfactory/Airline-v0")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (…/v1)")
    parser.add_argument("--model", default="Qwen/Qwen3-8B")
    parser.add_argument("--api-key-var", default="OPENAI_API_KEY")
    parser.add_argument("--episodes", type=int, default=3)
    args = parser.parse_args()
    env = ef_vf.make(args.env)  # the glue: a verifiers.v1 Env
    tasks = list(env.taskset.take(args.episodes))
    for task in tasks:
        print(task.key, "|", task.data.prompt)
    if not args.base_url:
        print("verifiers CLI taskset id:", ef_vf.TASKSET_ID, "(pass --base-url to run episodes)")
        return
    os.environ.setdefault(args.api_key_var, "EMPTY")
    client = vf.EvalClientConfig(base_url=args.base_url, api_key_var=args.api_key_var)
    ctx = vf.ModelContext(model=args.model, client=client)
    for task in tasks:
        episode = asyncio.run(env.run_episode(task, ctx))
        for trace in episode.traces:
            reward = trace.rewards.get("envfactory_reward")
            print(task.data.task_id, "reward", reward.score if reward else None, trace.errors)


if __name__ == "__main__":
    main()
