"""An envfactory env in SkyRL-Gym: oracle episodes, and the rows SkyRL's trainer reads.

Run::
    python examples/integrations/skyrl_env.py [--rows airline.jsonl]
"""

from __future__ import annotations

import argparse
import json

import skyrl_gym

from envfactory_gym.agents import OracleAgent
from envfactory_gym.integrations import skyrl as ef_skyrl


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="envfactory/Airline-v0")
    parser.add_argument("--rows", help="write SkyRL dataset rows (JSONL) here")
    args = parser.parse_args()
    rows = ef_skyrl.dataset_rows(args.env)
    if args.rows:
        with open(args.rows, "w") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)
    for row in rows[:3]:
        env = skyrl_gym.make(row["env_class"], extras=row)  # what SkyRL does per row
        env.init(row["prompt"])
        agent = OracleAgent()
        agent.reset(env.core.task)
        out = {"done": False}
        while not out["done"]:
            out = env.step(agent.act([], []))
        print(row["extra_info"]["task_id"], "reward", out["reward"], env.get_metrics())
    env = ef_skyrl.make(args.env, task_id=rows[0]["extra_info"]["task_id"])  # the one-line glue
    print(type(env).__name__, env.init()[1]["task_id"])


if __name__ == "__main__":
    main()
