"""GRPO with TRL's `environment_factory` on Airline-v0: one line of envfactory glue.

Run::
    python examples/integrations/trl_grpo.py                 # a tiny random Qwen3, 1 step, CPU
    python examples/integrations/trl_grpo.py Qwen/Qwen3-0.6B --max_steps 50
"""

from __future__ import annotations

import argparse
import os
import tempfile

from trl import GRPOConfig, GRPOTrainer

from envfactory_gym.integrations import trl as ef_trl

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", nargs="?", help="a Qwen3 checkpoint (default: a tiny random one)")
    parser.add_argument("--env", default="envfactory/Airline-v0")
    parser.add_argument("--max_steps", type=int, default=1)
    args = parser.parse_args()
    model = args.model
    if model is None:
        from envfactory_gym.training.tiny_model import build_tiny_model

        model = str(build_tiny_model(tempfile.mkdtemp() + "/tiny-qwen3", vocab_size=4096))
    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        max_steps=args.max_steps,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=64,
        max_tool_calling_iterations=8,
        chat_template_kwargs={"enable_thinking": False},
        use_cpu=args.model is None,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
    )
    trainer = GRPOTrainer(model, args=config, **ef_trl.make(args.env).kwargs())  # the glue
    trainer.train()
    for env in trainer.environments:
        print(env.episode.task.id, "reward", env.get_reward())


if __name__ == "__main__":
    main()
