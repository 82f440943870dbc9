"""User simulators: the scripted user tells only what is asked, confirms only what matches the
task, leaves when the agent is done; the LLM user replays from its disk cache, call for call.

The last test runs the LLM user against a real OpenAI-compatible server on loopback:
`transformers serve` with the tiny Qwen3 built offline (random weights: its replies are noise,
but real model output over real HTTP, sampled with the request's seed)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest

import envfactory_gym
from envfactory_gym.actions import format_tool_call
from envfactory_gym.tasks import Task, UserReactions
from envfactory_gym.users import (
    STOP_MARKER,
    USER_CACHE_ENV,
    LLMUser,
    OpenAIChat,
    ScriptedUser,
    UserProfile,
    cache_key,
    openai_chat,
    user_cache_dir,
)
from tests.conftest import ENV_ID
from tests.serving import transformers_serve

AIRLINE = envfactory_gym.load_package("airline")
RETAIL = envfactory_gym.load_package("retail")
CANCEL = AIRLINE.task("airline-cancel-00")


def scripted(task: Task, max_replies: int = 10) -> ScriptedUser:
    user = ScriptedUser(max_replies)
    user.reset(task)
    return user


# ----- task fields and profiles ---------------------------------------------------------------
def test_every_shipped_task_gets_a_full_profile() -> None:
    for name in ("airline", "retail", "cinema", "helpdesk"):
        for task in envfactory_gym.load_package(name).tasks:
            profile = UserProfile.for_task(task)
            assert profile.persona and profile.reason == task.instruction
            assert profile.known == task.user_facts
            assert all(vars(profile.reactions).values())
            said = (task.instruction + json.dumps(task.user_facts)).casefold()
            for unknown in profile.unknown:  # never something the user said or was told
                argument = unknown.replace(" ", "_")
                values = [c.arguments[argument] for c in task.calls if argument in c.arguments]
                assert values and all(str(v).casefold() not in said for v in values[:1])
    profile = UserProfile.for_task(CANCEL)
    assert profile.unknown == ["reservation id"]
    assert profile.persona.startswith("A customer")


def test_task_profile_fields_override_the_defaults_and_stay_out_of_old_json() -> None:
    old = CANCEL.model_dump_json()
    assert all(f not in old for f in ("persona", "reason_for_contact", "user_unknowns"))
    task = CANCEL.model_copy(
        update={
            "persona": "Liam, a nervous first-time flyer.",
            "reason_for_contact": "Wants to cancel a trip booked yesterday.",
            "user_unknowns": ["booking reference"],
            "user_reactions": UserReactions(confirm="Yes, do it."),
        }
    )
    again = Task.model_validate_json(task.model_dump_json())
    assert again == task
    profile = UserProfile.for_task(again)
    assert profile.persona == "Liam, a nervous first-time flyer."
    assert profile.reason == "Wants to cancel a trip booked yesterday."
    assert profile.unknown == ["booking reference"]
    assert profile.reactions.confirm == "Yes, do it."
    assert profile.reactions.decline  # the others keep their defaults
    reservation = CANCEL.calls[-1].arguments["reservation_id"]
    assert scripted(again).reply(f"Shall I cancel reservation {reservation}?") == "Yes, do it."


# ----- the scripted user ----------------------------------------------------------------------
def test_scripted_user_reveals_only_the_facts_asked_for() -> None:
    task = RETAIL.tasks[0]
    facts = task.user_facts
    assert set(facts) == {"name", "zip", "email"}
    user = scripted(task)
    reply = user.reply("Could you tell me your zip code?")
    assert reply == f"My zip is {facts['zip']}."
    assert facts["email"] not in reply and facts["name"] not in reply
    reply = user.reply("What is your e-mail address and postal code, please?")
    assert facts["email"] in reply and facts["zip"] in reply and facts["name"] not in reply
    for message in (
        "What time is it there?",  # a question about nothing they know
        f"Is your email {facts['email']}?",  # the agent already has it
    ):
        reply = user.reply(message) or ""
        assert not any(value in reply for value in facts.values()), message
    assert user.reply("Which date was the order placed?") == user.profile.reactions.unknown


def test_scripted_user_confirms_matching_proposals_and_declines_others() -> None:
    user = scripted(CANCEL)
    confirm, decline = user.profile.reactions.confirm, user.profile.reactions.decline
    reservation = CANCEL.calls[-1].arguments["reservation_id"]
    other = "ZX81QQ"
    assert other != reservation
    cases = {
        f"Shall I cancel reservation {reservation}?": confirm,
        f"Do you confirm the cancellation of {reservation} for a full refund?": confirm,
        "Shall I proceed?": confirm,
        f"Would you like me to go ahead and cancel {reservation.lower()} now?": confirm,
        f"Shall I cancel reservation {other}?": decline,  # a record the task never touches
        f"Would you like me to upgrade {reservation} to business instead?": decline,
        "Should I transfer you to a human agent?": decline,
    }
    for message, expected in cases.items():
        assert user.reply(message) == expected, message


def test_scripted_user_ends_the_conversation_when_the_agent_is_done() -> None:
    for message in (
        "Your reservation has been cancelled and the refund is on its way.",
        "All set! Is there anything else I can help you with?",
        "Done. Anything else?",
        "231.",  # a final answer: no question, nothing asked
    ):
        assert scripted(CANCEL).reply(message) is None, message
    user = scripted(CANCEL, max_replies=1)
    assert user.reply("Could you tell me your user id?") is not None
    assert user.reply("And your reason?") is None  # replies spent


def test_scripted_user_in_an_episode_keeps_the_oracle_at_one() -> None:
    env = gym.make(ENV_ID)
    env.reset(options={"task_id": CANCEL.id})
    obs, *_ = env.step("Could you tell me your user id?")
    assert obs == f"My user id is {CANCEL.user_facts['user_id']}."
    for call in CANCEL.calls[:-1]:
        env.step(format_tool_call(call.name, call.arguments))
    reservation = CANCEL.calls[-1].arguments["reservation_id"]
    obs, *_ = env.step(f"Shall I cancel reservation {reservation}?")
    assert obs == "Yes, please go ahead."
    env.step(format_tool_call(CANCEL.calls[-1].name, CANCEL.calls[-1].arguments))
    obs, reward, terminated, truncated, info = env.step("; ".join(CANCEL.outputs) + ".")
    assert terminated and not truncated and reward == 1.0 and info["success"]


# ----- the LLM user ---------------------------------------------------------------------------
class CountingChat:
    """A stand-in chat function: counts calls, answers from what it was asked."""

    model = "counting-chat"

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[tuple[list[dict[str, str]], int]] = []
        self.stop_after = stop_after

    def __call__(self, messages: list[dict[str, str]], seed: int) -> str:
        self.calls.append((messages, seed))
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            return STOP_MARKER
        return f"<think>hmm</think>reply {len(messages)} seed {seed}"


AGENT_SCRIPT = ["Could you tell me your user id?", "What is the reason?", "Shall I proceed?"]


def llm_episode(user: LLMUser, seed: int = 0) -> tuple[list[dict[str, Any]], float]:
    """Three messages to the user (the episode may end sooner if the user stops); returns the
    whole conversation and the reward the episode would score."""
    env = gym.make(ENV_ID, user=user)
    env.reset(seed=seed, options={"task_id": CANCEL.id})
    for action in AGENT_SCRIPT:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    core = env.unwrapped
    return core.conversation(), core.score().total


def test_llm_user_replays_identically_from_its_cache(tmp_path: Path) -> None:
    chat = CountingChat()
    first, reward = llm_episode(LLMUser(chat, cache_dir=tmp_path))
    assert len(chat.calls) == 3 and "reply" in first[3]["content"] and "<think>" not in str(first)
    system, *conversation = chat.calls[0][0]
    assert system["role"] == "system" and conversation == [
        {"role": "user", "content": AGENT_SCRIPT[0]}
    ]
    again_chat = CountingChat()
    replayed = LLMUser(again_chat, cache_dir=tmp_path)
    second, reward_again = llm_episode(replayed)
    assert again_chat.calls == [] and replayed.cache_hits == 3  # zero calls the second time
    assert second == first and reward_again == reward
    assert len(list(tmp_path.rglob("*.json"))) == 3


def test_llm_user_seed_comes_from_reset_and_changes_the_key(tmp_path: Path) -> None:
    chat = CountingChat()
    user = LLMUser(chat, cache_dir=tmp_path, seed=7)
    llm_episode(user, seed=11)
    assert user.seed == 11 and {seed for _, seed in chat.calls} == {11}
    llm_episode(user, seed=12)
    assert len(chat.calls) == 6 and len(list(tmp_path.rglob("*.json"))) == 6
    messages = chat.calls[0][0]
    keys = {cache_key(CANCEL.id, messages, seed, "counting-chat") for seed in (0, 1, 11)}
    keys.add(cache_key(CANCEL.id, messages, 0, "another-model"))
    keys.add(cache_key("airline-cancel-01", messages, 0, "counting-chat"))
    assert len(keys) == 5
    user.reset(CANCEL)  # no seed given: the user's own
    assert user.seed == 7


def test_llm_user_stop_marker_ends_the_episode(tmp_path: Path) -> None:
    chat = CountingChat(stop_after=2)
    env = gym.make(ENV_ID, user=LLMUser(chat, cache_dir=tmp_path))
    env.reset(options={"task_id": CANCEL.id})
    obs, _, terminated, _, _ = env.step(AGENT_SCRIPT[0])
    assert not terminated and obs.startswith("reply")
    obs, reward, terminated, truncated, info = env.step("It is cancelled.")
    assert terminated and not truncated and obs == "" and "reward_breakdown" in info
    assert STOP_MARKER not in json.dumps(info["messages"])


def test_llm_user_prompt_stays_in_character_and_hides_the_ground_truth(tmp_path: Path) -> None:
    chat = CountingChat()
    user = LLMUser(chat, cache_dir="off")
    assert user.cache_dir is None
    user.reset(CANCEL)
    prompt = user.messages[0]["content"]
    assert CANCEL.instruction in prompt and STOP_MARKER in prompt
    assert all(value in prompt for value in CANCEL.user_facts.values())
    assert "reservation id" in prompt
    assert CANCEL.calls[-1].arguments["reservation_id"] not in prompt
    assert "cancel_reservation" not in prompt and "never the agent" in prompt
    user.reply("Hi")
    user.reset(CANCEL)
    user.reply("Hi")
    assert len(chat.calls) == 2  # cache off: every reply calls


def test_llm_user_cache_location_and_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(USER_CACHE_ENV, str(tmp_path / "from-env"))
    assert user_cache_dir() == tmp_path / "from-env"
    assert user_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.setenv(USER_CACHE_ENV, "off")
    assert user_cache_dir() is None
    monkeypatch.delenv(USER_CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "xdg" / "envfactory_gym" / "users"
    with pytest.raises(ValueError, match="model"):
        LLMUser(lambda messages, seed: "hi")
    with pytest.raises(TypeError, match="callable"):
        LLMUser("not a function", model="m")  # type: ignore[arg-type]
    user = LLMUser(lambda messages, seed: 42, model="m", cache_dir=tmp_path)  # type: ignore[arg-type, return-value]
    with pytest.raises(RuntimeError, match="reset"):
        user.reply("hello")
    user.reset(CANCEL)
    with pytest.raises(TypeError, match="str"):
        user.reply("hello")
    chat = openai_chat("some-model", "http://127.0.0.1:9/v1")
    assert isinstance(chat, OpenAIChat) and LLMUser(chat, cache_dir="off").model == "some-model"
    assert "openai" not in sys.modules or chat._client is None  # nothing connects before a call


def test_env_with_llm_user_pickles(tmp_path: Path) -> None:
    import pickle

    env = envfactory_gym.ToolUseEnv(
        "airline", user=LLMUser(openai_chat("m", "http://127.0.0.1:9/v1"), cache_dir=tmp_path)
    )
    env.reset(options={"task_id": CANCEL.id})
    copy = pickle.loads(pickle.dumps(env))
    assert copy.user.model == "m" and copy.user.profile == env.user.profile


# ----- against a real OpenAI-compatible server ------------------------------------------------
@pytest.fixture(scope="module")
def served_tiny_qwen3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`transformers serve` on loopback with the tiny Qwen3 (sampling on, so seeds matter)."""
    for module in ("torch", "transformers", "fastapi", "uvicorn", "openai"):
        pytest.importorskip(module)
    from envfactory_gym.training.tiny_model import build_tiny_model

    model = Path(build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", vocab_size=4096))
    config = json.loads((model / "generation_config.json").read_text())
    config.update(do_sample=True, top_k=0, max_new_tokens=12)
    (model / "generation_config.json").write_text(json.dumps(config))
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with transformers_serve(model, log_path, "--reasoning", "off") as url:
        yield f"{url}|{model}"


def test_llm_user_against_transformers_serve_replays_without_the_server(
    served_tiny_qwen3: str, tmp_path: Path
) -> None:
    base_url, model = served_tiny_qwen3.split("|")

    class Recording(OpenAIChat):
        requests = 0

        def __call__(self, messages: list[dict[str, str]], seed: int) -> str:
            Recording.requests += 1
            return super().__call__(messages, seed)

    def user(seed_url: str, cache: Path | str) -> LLMUser:
        return LLMUser(Recording(model, seed_url, max_tokens=12, timeout=120), cache_dir=cache)

    first, _ = llm_episode(user(base_url, tmp_path / "cache"), seed=3)
    assert 1 <= Recording.requests <= 3  # fewer when the model's reply is empty (it ends)
    assert first[2] == {"role": "assistant", "content": AGENT_SCRIPT[0]}
    assert first[3]["role"] == "user" and first[3]["content"].strip()  # the model's own words

    # seeded at the server too: the same seed samples the same reply without any cache
    uncached, _ = llm_episode(user(base_url, "off"), seed=3)
    assert uncached == first
    other_seed, _ = llm_episode(user(base_url, "off"), seed=4)
    assert other_seed != first

    # the replay needs no server at all: a dead address, zero requests, the same conversation
    Recording.requests = 0
    replay = user("http://127.0.0.1:9/v1", tmp_path / "cache")
    again, _ = llm_episode(replay, seed=3)
    assert Recording.requests == 0 and replay.calls == 0 and again == first
