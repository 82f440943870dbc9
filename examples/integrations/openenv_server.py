"""Serve an envfactory env with OpenEnv and play oracle episodes through OpenEnv's client.

Run::
    python examples/integrations/openenv_server.py            # server + client on loopback
    python examples/integrations/openenv_server.py --serve    # just serve on :8000
"""

from __future__ import annotations

import argparse
import threading
import time

import gymnasium as gym
import uvicorn

import envfactory_gym  # noqa: F401  (registers the env ids)
from envfactory_gym.agents import OracleAgent
from envfactory_gym.integrations.openenv import EnvfactoryAction, EnvfactoryClient, create_app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="envfactory/Airline-v0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--serve", action="store_true", help="serve until interrupted")
    args = parser.parse_args()
    app = create_app(args.env)  # the glue
    if args.serve:
        uvicorn.run(app, host="0.0.0.0", port=args.port)
        return
    server = uvicorn.Server(uvicorn.Config(app, port=args.port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    with EnvfactoryClient(base_url=f"http://127.0.0.1:{args.port}").sync() as client:
        for task_id in ["airline-flight_status-00", "airline-add_bags-00"]:
            result = client.reset(task_id=task_id)
            agent = OracleAgent()  # replays the task's ground truth
            agent.reset(gym.make(args.env).unwrapped.package.task(task_id))
            while not result.done:
                result = client.step(EnvfactoryAction(text=agent.act([], [])))
            print(task_id, "reward", result.reward)
    server.should_exit = True


if __name__ == "__main__":
    main()
