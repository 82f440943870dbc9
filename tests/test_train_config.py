"""train.py's configuration: TrainConfig, its YAML file and its strict, self-documenting CLI.

Fast: no model, no env; only `training/config.py` (and `train.py` in a subprocess).
"""

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from envfactory_gym.training import config as cfg

REPO = Path(__file__).resolve().parents[1]
FIELDS = [f.name for f in dataclasses.fields(cfg.TrainConfig)]


def _error(argv, capsys) -> str:
    """parse_config's CLI error message (it must exit like argparse: status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        cfg.parse_config(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def _help_text(capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cfg.parse_config(["--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _squash(text: str) -> str:
    """Without whitespace: argparse wraps help lines at spaces and hyphens."""
    return "".join(text.split())


# ------------------------------------------------------------------- values, YAML, overrides
def test_every_config_field_is_a_flag_and_yaml_is_overridden_by_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("algo: rloo\nlearning_rate: 3.0e-6\nenvs: [airline]\nlora: true\n")
    config = cfg.parse_config(
        ["--config", str(path), "--learning_rate", "1e-5", "--no-lora", "--tasks", "a*", "b*"]
    )
    assert config.algo == "rloo" and config.learning_rate == 1e-5 and config.lora is False
    assert config.envs == ["airline"] and config.tasks == ["a*", "b*"]
    assert cfg.parse_config(["--config", str(path)]).lora is True  # unset flags keep the YAML
    assert cfg.parse_config(["--bf16"]).bf16 is True
    assert cfg.parse_config(["--tau", "none"]).tau is None
    flags = {a.dest for a in cfg.build_parser()._actions}
    assert set(FIELDS) <= flags


def test_flag_value_forms_keep_working(tmp_path):
    config = cfg.parse_config(
        ["--bf16", "false", "--lora", "--no-whiten_advantages", "--curriculum", "true"]
        + ["--env_weights", "1", "2.5", "--save_total_limit", "null", "--resume", "None"]
        + ["--lr_scheduler_type", "linear", "--max_steps", "7", "--output_dir=/tmp/x"]
    )
    assert (config.bf16, config.lora, config.whiten_advantages, config.curriculum) == (
        False,
        True,
        False,
        True,
    )
    assert config.env_weights == [1.0, 2.5] and config.save_total_limit is None
    assert config.resume is None and config.lr_scheduler_type == "linear"
    assert config.max_steps == 7 and config.output_dir == "/tmp/x"
    assert cfg.parse_config([]) == cfg.TrainConfig()

    saved = tmp_path / "train_config.yaml"
    cfg.save_config(config, saved)
    assert cfg.parse_config(["--config", str(saved)]) == config


def test_shipped_configs_parse():
    root = REPO / "configs"
    names = [n for n in os.listdir(root) if n.endswith(".yaml")]
    assert {"grpo_qwen3.yaml", "rloo_qwen3.yaml", "ppo_qwen3.yaml", "sft_qwen3.yaml"} <= set(names)
    for name in names:
        config = cfg.parse_config(["--config", str(root / name)])
        assert config.algo in cfg.ALGOS


def test_tau_schedule_is_linear_in_steps():
    config = cfg.TrainConfig(tau=0.8, tau_final=0.2, tau_schedule_steps=10)
    assert [round(config.tau_at(s), 3) for s in (0, 5, 10, 50)] == [0.8, 0.5, 0.2, 0.2]
    assert cfg.TrainConfig().tau_at(7) is None
    assert cfg.TrainConfig(tau=0.3, format_penalty=0.2).reward_overrides() == {
        "tau": 0.3,
        "format_penalty": 0.2,
    }


# ------------------------------------------------------------------------------ strictness
def test_abbreviated_flags_are_rejected_with_close_matches(capsys):
    # `--lr` used to be taken as --lr_scheduler_type, `--learning_rat` as --learning_rate
    message = _error(["--lr", "1e-5"], capsys)
    assert "unknown option --lr;" in message
    assert "did you mean --learning_rate, --lr_scheduler_type" in message
    assert "did you mean --learning_rate" in _error(["--learning_rat", "1e-5"], capsys)
    assert "unknown option --lr;" in _error(["--lr=1e-5"], capsys)
    assert "--max_steps" in _error(["--max_step", "3"], capsys)
    assert "did you mean --no-lora?" in _error(["--no-lroa"], capsys)
    both = _error(["--seeed", "1", "--tasks", "a*", "--gama", "0.9"], capsys)
    assert "--seeed; did you mean --seed?" in both and "--gama; did you mean --gamma?" in both
    assert "unrecognized arguments: stray" in _error(["stray"], capsys)


def test_bad_values_and_config_files_exit_like_argparse(tmp_path, capsys):
    assert "invalid choice: 'dpo'" in _error(["--algo", "dpo"], capsys)
    assert "invalid int value: 'x'" in _error(["--max_steps", "x"], capsys)
    assert "not a boolean" in _error(["--bf16", "maybe"], capsys)
    assert "tau_final needs tau_schedule_steps" in _error(["--tau_final", "0.2"], capsys)
    assert "missing.yaml" in _error(["--config", str(tmp_path / "missing.yaml")], capsys)
    with pytest.raises(ValueError, match="algo"):
        cfg.TrainConfig(algo="dpo")


def test_unknown_yaml_keys_name_close_matches(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("algo: grpo\nlearning_rat: 1.0\nnum_generation: 4\nzzz: 1\n")
    with pytest.raises(ValueError) as error:
        cfg.load_yaml(path)
    text = str(error.value)
    assert "unknown key 'learning_rat' (did you mean learning_rate" in text
    assert "unknown key 'num_generation' (did you mean num_generations" in text
    assert "unknown key 'zzz'" in text
    assert "unknown key 'learning_rat' (did you mean learning_rate" in _error(
        ["--config", str(path)], capsys
    )


def test_close_matches():
    names = FIELDS
    assert cfg.close_matches("lr", names)[:2] == ["learning_rate", "lr_scheduler_type"]
    assert cfg.close_matches("learning_rat", names)[0] == "learning_rate"
    assert cfg.close_matches("bf61", names) == ["bf16"]
    assert cfg.close_matches("qqqqqq", names) == []


# ------------------------------------------------------------------------------------- help
def test_every_field_has_help_and_help_shows_it_with_its_default(capsys):
    missing = [f.name for f in dataclasses.fields(cfg.TrainConfig) if not f.metadata.get("help")]
    assert not missing, f"fields without metadata help: {missing}"
    shown = _help_text(capsys)
    text = _squash(shown)
    for f in dataclasses.fields(cfg.TrainConfig):
        assert f"  --{f.name} " in shown
        assert _squash(f.metadata["help"]) in text, f.name
    assert _squash("(default: 1e-06)") in text  # learning_rate
    assert _squash("(default: envfactory/Airline-v0)") in text
    assert "--no-FIELD" in shown  # the epilog documents the value forms


def test_help_groups_flags_by_the_dataclass_sections(capsys):
    # the `# --- title ---` markers in TrainConfig's source are the sections
    source = inspect.getsource(cfg.TrainConfig)
    marked, title = {}, None
    for line in source.splitlines():
        header = re.match(r"\s*# --- (.+?) -+$", line)
        field = re.match(r"\s{4}(\w+): ", line)
        if header:
            title = header.group(1)
        elif field and field.group(1) in FIELDS:
            marked[field.group(1)] = title
    assert marked == cfg.field_sections()
    titles = list(dict.fromkeys(marked.values()))
    assert len(titles) == 9

    parser = cfg.build_parser()
    for group in parser._action_groups:
        for action in group._group_actions:
            if action.dest in FIELDS:
                assert group.title == marked[action.dest], action.dest
    text = _help_text(capsys)
    positions = [text.index(f"\n{t}:\n") for t in titles]
    assert positions == sorted(positions)
    for name in FIELDS:  # each flag is listed under its own section's heading
        at = text.index(f"  --{name} ")
        section = titles.index(marked[name])
        assert positions[section] < at
        assert section + 1 == len(titles) or at < positions[section + 1]


# ----------------------------------------------------------------------------------- train.py
def test_train_py_cli_is_strict_and_documented():
    def run(*args):
        return subprocess.run(
            [sys.executable, str(REPO / "train.py"), *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            env={**os.environ, "COLUMNS": "100"},
        )

    bad = run("--lr", "1e-5")
    assert bad.returncode == 2
    assert "unknown option --lr; did you mean --learning_rate, --lr_scheduler_type" in bad.stderr
    shown = run("--help")
    assert shown.returncode == 0
    assert "optimisation (shared):" in shown.stdout and "--learning_rate FLOAT" in shown.stdout

    doc = (REPO / "train.py").read_text(encoding="utf-8").split('"""')[1]
    assert "docs/training.md" not in doc and "README.md#training" in doc
    assert "## Training" in (REPO / "README.md").read_text(encoding="utf-8")
