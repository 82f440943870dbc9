"""A local transformers causal LM as an agent: Qwen3 by default, any model with a chat template.

The conversation and the tool schemas go through `tokenizer.apply_chat_template(messages,
tools=tools, add_generation_prompt=True, enable_thinking=...)`; the action is the decoded
completion (special tokens such as `<|im_end|>` dropped, `<tool_call>` blocks kept), which the
env parses. Generation is greedy (`temperature=0`, the default) or sampled with a seed:
`reset(task, seed=...)` reseeds, so an episode's actions repeat for the same seed.
`act_batch` generates one turn for several episodes at once (left padding).

A `train.py` output folder works as the model: the final model (full weights or a peft LoRA
adapter) in the folder itself, else its latest `checkpoint-N`.

torch and transformers are imported when the model is first needed, never on import, so the
core package works without them; the weights load lazily on the first `act` too (building the
agent only checks the path).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

from envfactory_gym.tasks import Task

DEFAULT_MAX_NEW_TOKENS = 512


def resolve_model_path(name_or_path: str | Path) -> str:
    """The folder (or hub name) to load: a model folder as is; a `train.py` output folder
    without weights at its top resolves to its latest `checkpoint-N`. A name that is not an
    existing folder is returned unchanged (a hub model name, loaded from the local cache)."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        if str(name_or_path).startswith((".", "/", "~")):
            raise FileNotFoundError(f"no model folder at {path}")
        return str(name_or_path)
    if not path.is_dir():
        raise NotADirectoryError(f"a model is a folder, not the file {path}")
    if _has_weights(path):
        return str(path)
    checkpoints = sorted(
        (p for p in path.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()),
        key=lambda p: int(p.name[11:]),
    )
    for checkpoint in reversed(checkpoints):
        if _has_weights(checkpoint):
            return str(checkpoint)
    raise FileNotFoundError(
        f"{path} holds no model (config.json or adapter_config.json) and no checkpoint-N "
        "folder with one; give a model folder or a train.py output folder"
    )


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from `parts`, the same in every process (unlike `hash`)."""
    return zlib.crc32(json.dumps(parts, default=str).encode()) & 0x7FFFFFFF


class HFAgent:
    """A transformers causal LM with a chat template, acting through `<tool_call>` text.

    Args:
        model: a model folder, a `train.py` output folder, or a hub name in the local cache.
        thinking: Qwen3's thinking mode (`enable_thinking` of the chat template). Off by
            default, as `train.py` renders prompts by default.
        temperature: 0 for greedy decoding (the default), else the sampling temperature.
        top_p: nucleus sampling's top_p (sampling only).
        max_new_tokens: the longest completion of one turn.
        seed: the seed of sampling when `reset` gets none.
        device: "cpu", "cuda", "cuda:1", ...; by default cuda when available, else cpu.
        dtype: the torch dtype name to load the weights in ("auto" keeps the saved one).
        chat_template_kwargs: more keyword arguments for `apply_chat_template`.

    After each episode, `last_episode_tokens` is the number of tokens the model processed in
    it: every turn's prompt plus its completion (as an API's usage would count them).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        thinking: bool = False,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        seed: int = 0,
        device: str | None = None,
        dtype: str = "auto",
        chat_template_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {temperature}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, not {max_new_tokens}")
        self.model_path = resolve_model_path(model)
        self.thinking = thinking
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self.chat_template_kwargs = {"enable_thinking": thinking, **(chat_template_kwargs or {})}
        self.model: Any = None
        self.tokenizer: Any = None
        self._generate: Any = None
        self.episode_seed = seed
        self.turn = 0
        self.batch_calls = 0
        self.last_episode_tokens = 0
        self.last_episode_prompt_tokens = 0
        self.last_episode_completion_tokens = 0
        self.last_batch_tokens: list[int] = []

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    # ----- the agent protocol ---------------------------------------------------------------
    def reset(self, task: Task | None = None, seed: int | None = None) -> None:
        """Start an episode: token counts to zero; sampling reseeded with `seed` (or the
        agent's own seed), so the same seed gives the same actions."""
        self.episode_seed = self.seed if seed is None else seed
        self.turn = 0
        self.last_episode_tokens = 0
        self.last_episode_prompt_tokens = 0
        self.last_episode_completion_tokens = 0

    def act(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        """The next assistant turn's text for this conversation."""
        prompt = self.prompt_ids(messages, tools)
        (completion,) = self._run([prompt], derive_seed(self.episode_seed, self.turn))
        self.turn += 1
        self.last_episode_prompt_tokens += len(prompt)
        self.last_episode_completion_tokens += len(completion)
        self.last_episode_tokens += len(prompt) + len(completion)
        return self.decode(completion)

    def act_batch(
        self,
        messages_batch: list[list[dict[str, Any]]],
        tools_batch: list[list[dict[str, Any]]],
    ) -> list[str]:
        """One turn for several conversations at once (left-padded into one `generate`).

        Episode state (`turn`, `last_episode_tokens`) is left alone: the caller owns the
        episodes. `last_batch_tokens[i]` is row i's prompt plus completion tokens. Sampling is
        seeded from the agent's seed and the number of batches so far, so a run of batches
        repeats for the same seed.
        """
        if len(messages_batch) != len(tools_batch):
            raise ValueError(
                f"{len(messages_batch)} conversations but {len(tools_batch)} tool lists"
            )
        if not messages_batch:
            self.last_batch_tokens = []
            return []
        prompts = [self.prompt_ids(m, t) for m, t in zip(messages_batch, tools_batch, strict=True)]
        completions = self._run(prompts, derive_seed(self.seed, "batch", self.batch_calls))
        self.batch_calls += 1
        self.last_batch_tokens = [
            len(p) + len(c) for p, c in zip(prompts, completions, strict=True)
        ]
        return [self.decode(c) for c in completions]

    # ----- pieces ---------------------------------------------------------------------------
    def load(self) -> None:
        """Load the tokenizer and the weights (done on the first turn; call it to load early)."""
        if self.model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from envfactory_gym.training.generation import hf_generate_fn

        folder = Path(self.model_path)
        adapter = (folder / "adapter_config.json").is_file()
        tokenizer_source = self.model_path
        if adapter and not (folder / "tokenizer_config.json").is_file():
            base = json.loads((folder / "adapter_config.json").read_text())
            tokenizer_source = base["base_model_name_or_path"]
        try:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_source)
        except OSError as exc:
            raise OSError(
                f"cannot load the model {self.model_path!r}: it is not a local folder, and as a "
                f"hub name it is not in the local cache or cannot be downloaded ({exc})"
            ) from exc
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"the tokenizer of {self.model_path} has no chat template; HFAgent needs a "
                "chat model (one whose tokenizer_config.json or chat_template.jinja has one)"
            )
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if adapter:
            try:
                from peft import AutoPeftModelForCausalLM
            except ImportError as exc:
                raise ImportError(
                    f"{self.model_path} is a LoRA adapter; loading it needs peft "
                    "(pip install 'envfactory-gym[train]')"
                ) from exc
            model = AutoPeftModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype)
            model = model.merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=self.dtype)
        model.to(device).eval()
        self.tokenizer, self.model = tokenizer, model
        self._generate = hf_generate_fn(
            model,
            tokenizer,
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature if not self.greedy else 1.0,
            top_p=self.top_p,
            greedy=self.greedy,
        )

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
        """The conversation and tools rendered by the chat template, ready for the next turn."""
        self.load()
        ids = self.tokenizer.apply_chat_template(
            messages,
            tools=tools or None,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=False,
            **self.chat_template_kwargs,
        )
        return list(ids)

    def decode(self, completion_ids: list[int]) -> str:
        """A completion as action text: special tokens dropped, `<tool_call>` blocks kept."""
        return self.tokenizer.decode(completion_ids, skip_special_tokens=True)

    def _run(self, prompts: list[list[int]], seed: int) -> list[list[int]]:
        """Completion ids (cut after the first stop token) for left-padded `prompts`."""
        import torch

        self.load()
        if not self.greedy:
            torch.manual_seed(seed)
        completions, _ = self._generate(prompts)
        return completions

    def __repr__(self) -> str:
        mode = "greedy" if self.greedy else f"temperature={self.temperature}, top_p={self.top_p}"
        return (
            f"HFAgent({self.model_path!r}, thinking={self.thinking}, {mode}, "
            f"max_new_tokens={self.max_new_tokens})"
        )
