"""Policies that act in the envs. Each has `reset(task)` and `act(messages, tools) -> str`.

Agent specs (`make_agent`, `envfactory eval --agent`):

- `oracle`, `random`
- `hf:PATH_OR_NAME[?options]`: a local transformers model (`HFAgent`); PATH may be a
  `train.py` output folder. Options: `thinking=0|1`, `temperature=0.7` (0: greedy, the
  default), `top_p=0.95`, `max_new_tokens=512`, `seed=0`, `device=cuda`, `dtype=bfloat16`.
- `openai:MODEL@URL[?options]`: an OpenAI-compatible server (`EndpointAgent`), e.g.
  `openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1`. Options: `tools=native|text` (how tools
  travel; native by default), `temperature`, `top_p`, `max_tokens`, `seed`, `timeout`,
  `api_key_env=OPENAI_API_KEY`, `thinking=0|1` (sent as `chat_template_kwargs`, which vLLM,
  SGLang and `transformers serve` understand).
- `package.module:Class`: a class of your own with `reset(task)` and `act`.

Options follow `?` as `key=value` pairs joined by `&`; keyword arguments given to `make_agent`
override them.
"""

import importlib
from typing import Any

from envfactory_gym.agents.base import Agent
from envfactory_gym.agents.endpoint import EndpointAgent, EndpointError
from envfactory_gym.agents.hf import HFAgent
from envfactory_gym.agents.oracle import OracleAgent
from envfactory_gym.agents.random_agent import RandomAgent
from envfactory_gym.specs import parse_spec_options, thinking_body

AGENTS = {"oracle": OracleAgent, "random": RandomAgent}

__all__ = [
    "AGENTS",
    "Agent",
    "EndpointAgent",
    "EndpointError",
    "HFAgent",
    "OracleAgent",
    "RandomAgent",
    "make_agent",
    "parse_agent_options",
]

_HF_OPTIONS = {
    "thinking": "bool",
    "temperature": float,
    "top_p": float,
    "max_new_tokens": int,
    "seed": int,
    "device": str,
    "dtype": str,
}
_OPENAI_OPTIONS = {
    "tools": str,
    "temperature": float,
    "top_p": float,
    "max_tokens": int,
    "seed": int,
    "timeout": float,
    "api_key_env": str,
    "thinking": "bool",
}


def make_agent(spec: str, **kwargs: Any) -> Agent:
    """Build an agent from its spec (see the module docstring for every form)."""
    if spec in AGENTS:
        return AGENTS[spec](**kwargs)
    if spec.startswith("hf:"):
        target, options = parse_agent_options(spec, _HF_OPTIONS)
        if not target:
            raise ValueError(f"agent {spec!r}: give a model, as hf:PATH_OR_NAME")
        return HFAgent(target, **{**options, **kwargs})
    if spec.startswith("openai:"):
        target, options = parse_agent_options(spec, _OPENAI_OPTIONS)
        model, at, url = target.rpartition("@")
        if not at or not model or not url:
            raise ValueError(
                f"agent {spec!r}: give the model and the server, as openai:MODEL@URL "
                "(e.g. openai:Qwen/Qwen3-8B@http://127.0.0.1:8000/v1)"
            )
        if "tools" in options:
            options["tool_mode"] = options.pop("tools")
        if "thinking" in options:
            options["extra_body"] = thinking_body(options.pop("thinking"))
        return EndpointAgent(model, url, **{**options, **kwargs})
    if ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"cannot load agent {spec!r}: {exc}") from None
        agent = cls(**kwargs) if kwargs else cls()
        missing = [m for m in ("reset", "act") if not callable(getattr(agent, m, None))]
        if missing:
            raise ValueError(f"agent {spec!r} has no {' or '.join(missing)} method")
        return agent
    raise ValueError(
        f"unknown agent {spec!r}; choose from {', '.join(AGENTS)}, hf:PATH_OR_NAME, "
        "openai:MODEL@URL, or give package.module:Class"
    )


def parse_agent_options(spec: str, allowed: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split `kind:TARGET?key=value&...` into TARGET and typed options; an unknown key or a
    value of the wrong type raises ValueError naming the spec."""
    return parse_spec_options(spec, allowed, what="agent")
