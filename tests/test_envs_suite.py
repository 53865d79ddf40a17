"""The env suite: full Twenty Questions table and LM oracle, Guess My City, Wordle, Maze."""

from __future__ import annotations

import string

import gymnasium as gym
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import agentrl.envs
from agentrl.envs import guess_my_city as gmc
from agentrl.envs import make_scripted, maze, run_scripted_episode, wordle
from agentrl.envs import twenty_questions as tq
from agentrl.envs.lm_oracle import LMOracle, make_oracle
from agentrl.policy.tokenizer import build_word_tokenizer

TQ, GMC, WORDLE, MAZE = (
    "agentrl/TwentyQuestions-v0",
    "agentrl/GuessMyCity-v0",
    "agentrl/Wordle-v0",
    "agentrl/Maze-v0",
)


@pytest.fixture(scope="module")
def tiny_lm():
    """A randomly initialised 1-layer Llama with the repo's word tokenizer (no download)."""
    tok = build_word_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, intermediate_size=64, max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return LlamaForCausalLM(config), tok


def _scores(env_id, kind, seeds=range(40), **kw):
    env = gym.make(env_id, **kw)
    eps = [run_scripted_episode(env, make_scripted(env_id, kind), seed=s) for s in seeds]
    return (
        eps,
        float(np.mean([e.success for e in eps])),
        float(np.mean([e.total_reward for e in eps])),
    )


# --- Twenty Questions: the full table --------------------------------------------------------


def test_full_table_answers_every_question_type_for_every_word():
    assert len(tq.FULL) == 157 and len(tq.CATEGORIES) == 17
    per_category = {c: sum(c in tq.WORDS[w][0] for w in tq.FULL) for c in tq.CATEGORIES}
    assert min(per_category.values()) >= 6, per_category
    for word in tq.FULL:
        for q in tq.ALL_QUESTIONS:
            assert tq.answer(word, q) in (tq.YES, tq.NO)
        assert tq.answer(word, tq.guess_text(word)) == tq.YES
    # the verb forms of the new attributes, case and spacing as for the classic ones
    assert tq.answer("duck", "can it SWIM") == tq.YES
    assert tq.answer("ring", "Is it jewelry?") == tq.YES
    assert tq.answer("ring", "Is it a jewelry?") == tq.YES
    assert tq.answer("sofa", "Can it be sat on?") == tq.YES
    assert tq.answer("rock", "Is it a rock?") == tq.INVALID  # not a word of the table
    assert tq.answer("duck", "Does it swim?") == tq.INVALID  # wrong verb


def test_classic_answers_are_unchanged_by_the_full_table():
    for word, (cats, attrs) in tq.CLASSIC_WORDS.items():
        for q in tq.QUESTIONS:
            parsed = tq.parse_question(q)
            assert parsed is not None
            expected = parsed.key in (cats if parsed.kind == "category" else attrs)
            assert tq.holds(word, parsed) == expected
    assert tq.valid_questions(tq.SUBSET) == list(tq.QUESTIONS) + [
        tq.guess_text(w) for w in tq.SUBSET
    ]
    assert len(tq.valid_questions(tq.FULL)) == 63 + 157


def test_full_game_good_policy_wins_every_word():
    env, policy = gym.make(TQ, word_list="full"), make_scripted(TQ, "good", word_list="full")
    turns = []
    for word in tq.FULL:
        ep = run_scripted_episode(env, policy, seed=0, task={"word": word})
        assert ep.success, word
        turns.append(ep.num_turns)
    assert max(turns) <= 12 and np.mean(turns) < 9
    _, random_success, _ = _scores(TQ, "random", word_list="full")
    assert random_success < 0.3


def test_lm_oracle_choose_is_the_argmax_of_summed_logprobs(tiny_lm):
    model, tok = tiny_lm
    oracle = LMOracle(model, tok)
    prompt, options = (
        "The hidden word is dog. Question: Can it fly? Answer:",
        (" Yes", " No", " maybe"),
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    manual = []
    for opt in options:
        o = tok(opt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids + o])).logits[0], -1)
        manual.append(sum(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(o)))
    assert oracle.choose(prompt, options) == int(np.argmax(manual))
    assert oracle.choose(prompt, (" Yes",)) == 0
    with pytest.raises(ValueError, match="at least one"):
        oracle.choose(prompt, ())


def test_twenty_questions_lm_oracle_mode(tiny_lm):
    model, tok = tiny_lm
    env = gym.make(TQ, oracle="lm", oracle_model=model, oracle_tokenizer=tok)
    env.reset(seed=0, options={"task": {"word": "dog"}})
    answers = []
    for q in ["Is it furry and friendly?", "Can it fly?", "Is it bigger than a car?"]:
        obs, reward, term, trunc, info = env.step(q)
        assert info["answer"] in (tq.YES, tq.NO) and not info["invalid_action"]
        assert reward == -1.0 and not term
        answers.append(info["answer"])
    obs, reward, term, _, info = env.step("")  # nothing to ask: invalid, as in the table game
    assert info["answer"] == tq.INVALID and info["invalid_action"]
    obs, reward, term, _, info = env.step("Is it a truck?")  # guesses follow the rules
    assert info["answer"] == tq.NO and not term
    obs, reward, term, _, info = env.step("Is it a dog?")
    assert (reward, term, info["success"]) == (0.0, True, True)
    # deterministic: the same questions get the same answers in a fresh env
    env2 = gym.make(TQ, oracle="lm", oracle_model=LMOracle(model, tok))
    env2.reset(seed=0, options={"task": {"word": "dog"}})
    again = [
        env2.step(q)[4]["answer"]
        for q in ["Is it furry and friendly?", "Can it fly?", "Is it bigger than a car?"]
    ]
    assert again == answers
    with pytest.raises(ValueError, match="oracle_model"):
        gym.make(TQ, oracle="lm")
    with pytest.raises(ValueError, match="oracle_tokenizer"):
        make_oracle(model)
    with pytest.raises(ValueError, match="'table' or 'lm'"):
        gym.make(TQ, oracle="gpt")


# --- Guess My City ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "city, question, expected",
    [
        ("Paris", "Is it Paris?", "Yes! It is Paris."),
        ("Paris", "is the city rome", "No, it is not Rome."),
        ("Paris", "Is it in Europe?", "Yes."),
        ("Paris", "Is it in South Africa?", "No."),
        ("Cape Town", "Is it in south africa", "Yes."),
        ("Cape Town", "Is it in Africa?", "Yes."),
        ("Sydney", "Which country is it in?", "It is in Australia."),
        ("Sydney", "What continent?", "It is in Oceania."),
        ("Lima", "Is it a capital?", "Yes, it is a capital city."),
        ("Chicago", "Is it by the sea?", "No, it is inland."),
        ("Tokyo", "What is the population?", "About 37 million people live there."),
        ("Venice", "How many people live there?", "Fewer than a million people live there."),
        ("Seoul", "What language do they speak?", "People there mostly speak Korean."),
        ("Lima", "Which hemisphere?", "It is in the southern hemisphere."),
        ("Kyoto", "What is it famous for?", "It is known for temples."),
        ("Kyoto", "Do you like it?", gmc.CANT),
        ("Kyoto", "", gmc.CANT),
        ("Kyoto", "Is it bigger than a sport stadium", gmc.CANT),  # no keyword as a word
    ],
)
def test_guess_my_city_oracle(city, question, expected):
    assert gmc.answer(gmc.BY_NAME[city.lower()], question) == expected


def test_guess_my_city_episode_and_policies():
    env = gym.make(GMC)
    obs, _ = env.reset(seed=0, options={"task": {"city": "Lima"}})
    assert obs == gmc.HEADER
    obs, r, term, _, info = env.step("Which  continent\nis it on?")
    assert obs.endswith("Q: Which continent is it on?\nA: It is in South America.\n")
    assert (r, term, info["invalid_action"]) == (-1.0, False, False)
    obs, r, term, _, info = env.step("tell me a joke")
    assert info["invalid_action"] and r == -1.0
    obs, r, term, _, info = env.step("Could it be Lima?")
    assert (r, term, info["success"]) == (0.0, True, True)
    signatures = {tuple(gmc.answer(c, q) for q in gmc.QUESTIONS) for c in gmc.CITIES}
    assert len(signatures) == len(gmc.CITIES) == 40
    for city in gmc.CITIES:  # the good policy finds every city
        ep = run_scripted_episode(env, make_scripted(GMC, "good"), seed=1, task={"city": city.name})
        assert ep.success and ep.num_turns <= 5, city.name
    _, good_success, good_return = _scores(GMC, "good")
    _, random_success, random_return = _scores(GMC, "random")
    assert good_success == 1.0 and random_success < 0.5 and good_return > random_return + 10
    with pytest.raises(ValueError, match="known"):
        gym.make(GMC, cities=["Atlantis"])


def test_guess_my_city_lm_oracle(tiny_lm):
    model, tok = tiny_lm
    env = gym.make(GMC, oracle="lm", oracle_model=model, oracle_tokenizer=tok)
    env.reset(seed=0, options={"task": {"city": "Paris"}})
    obs, r, term, _, info = env.step("What is the weather like?")
    assert isinstance(info["answer"], str) and 0 < len(info["answer"]) <= 100
    assert set(obs) <= set(string.printable) and obs.count("\n") == 3 and not term
    obs, r, term, _, info = env.step("Is it Paris?")  # the guess is still judged by the rules
    assert term and info["success"]


# --- Wordle ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "guess, target, expected",
    [("CRANE", "CRANE", "GGGGG"), ("SPEED", "ABIDE", "--Y-Y"), ("ALLOW", "LOYAL", "YYYY-"),
     ("LEVEL", "HELLO", "YG--Y"), ("ABCDE", "FGHIJ", "-----")],
)  # fmt: skip
def test_wordle_feedback(guess, target, expected):
    assert wordle.feedback(guess, target) == expected


def test_wordle_rules_and_policies():
    words = wordle.word_list()
    assert len(words) == 487 and all(len(w) == 5 and w.isalpha() and w.isupper() for w in words)
    assert wordle.parse_guess("I guess crane.") == "CRANE" and wordle.parse_guess("zzzzz") is None
    env = gym.make(WORDLE)
    obs, _ = env.reset(seed=0, options={"task": {"word": "crane"}})
    assert obs == wordle.HEADER
    obs, r, term, _, info = env.step("share")
    assert obs.endswith("SHARE --GYG\n") and (r, term, info["invalid_action"]) == (
        0.0,
        False,
        False,
    )
    obs, r, term, _, info = env.step("qwxyz!")
    assert obs.endswith("qwxyz! invalid\n") and r == -0.1 and info["invalid_action"]
    obs, r, term, _, info = env.step("CRANE")
    assert (r, term, info["success"]) == (1.0, True, True)
    assert wordle.parse_observation(obs) == [("SHARE", "--GYG"), ("CRANE", "GGGGG")]
    _, good_success, _ = _scores(WORDLE, "good")
    _, random_success, _ = _scores(WORDLE, "random")
    assert good_success >= 0.95 and random_success < 0.1
    with pytest.raises(ValueError, match="word list"):
        env.reset(options={"task": {"word": "zzzzz"}})


# --- Maze --------------------------------------------------------------------------------------


def test_maze_is_perfect_and_deterministic():
    for seed in range(20):
        grid = maze.carve(4, np.random.default_rng(seed))
        opened = sum(ch == "." for line in grid for ch in line)
        assert opened == 2 * 16 - 1  # 16 cells + 15 passages: a spanning tree
        assert all(line[0] == line[-1] == "#" for line in grid) and set(grid[0]) == {"#"}
    env = gym.make(MAZE)
    a, _ = env.reset(seed=3)
    b, _ = env.reset(seed=3)
    grid = "".join(maze.parse_grid(a))
    assert a == b and grid.count("A") == 1 and grid.count("G") == 1 and a.endswith("Start.\n")
    assert len(maze.parse_grid(a)) == 9 and a != env.reset(seed=4)[0]


def test_maze_moves_walls_and_policies():
    env = gym.make(MAZE, size=3)
    seed = next(
        s for s in range(100) if len(maze.shortest_path(maze.parse_grid(env.reset(seed=s)[0]))) >= 3
    )
    obs, _ = env.reset(seed=seed)
    path = maze.shortest_path(maze.parse_grid(obs))
    wall_moves = [m for m in maze.MOVES if m != path[0]]
    obs2, r, term, _, info = env.step("please go " + path[0].upper())
    assert obs2.splitlines()[-1] == f"You moved {path[0]}." and not info["invalid_action"]
    assert len(maze.shortest_path(maze.parse_grid(obs2))) == len(path) - 1
    obs3, r, *_, info = env.step("jump")
    assert obs3.splitlines()[-1] == "Invalid move." and r == -0.1 and info["invalid_action"]
    assert maze.parse_grid(obs3) == maze.parse_grid(obs2)  # nothing moved
    assert maze.parse_move("Go Left now") == "west" and maze.parse_move("nowhere") is None
    bumped = False
    for move in wall_moves:  # at least one neighbour of the start is a wall in a 3x3 tree maze
        env.reset(seed=seed)
        o, r, *_ = env.step(move)
        if o.splitlines()[-1] == "You hit a wall.":
            bumped = True
            assert maze.parse_grid(o) == maze.parse_grid(obs) and r == 0.0
    assert bumped
    good, good_success, _ = _scores(MAZE, "good")
    _, random_success, _ = _scores(MAZE, "random")
    assert good_success == 1.0 and random_success < 0.8
    for ep in good:  # the shortest path, turn for turn
        assert ep.num_turns == len(maze.shortest_path(maze.parse_grid(ep.turns[0].observation)))
    with pytest.raises(ValueError, match="size"):
        gym.make(MAZE, size=1)


# --- `agentrl train env=<each built-in>`: a one-iteration PPO smoke ------------------------


@pytest.mark.parametrize("alias", sorted(agentrl.envs.ENV_ALIASES))
def test_train_smoke_on_each_builtin_env(alias, tiny_overrides):
    import inspect
    from pathlib import Path

    from agentrl.config import load_config
    from agentrl.metrics import read_metrics
    from agentrl.trainer import Trainer

    root = Path(__file__).resolve().parents[1]
    assert (root / "configs" / "env" / f"{alias}.yaml").exists(), f"configs/env/{alias}.yaml"
    env_cls = gym.spec(agentrl.envs.ENV_ALIASES[alias]).entry_point
    cls = getattr(__import__(env_cls.split(":")[0], fromlist=["x"]), env_cls.split(":")[1])
    short = ["++env.kwargs.max_turns=3"] if "max_turns" in inspect.signature(cls).parameters else []
    summary = Trainer(
        load_config(
            [*tiny_overrides, f"env={alias}", "iterations=1", "rollout.episodes_per_iter=2",
             "rollout.envs_per_worker=2", "eval.episodes=2", "eval.sample=false",
             "checkpoint.every=100", *short]
        ),
        console=False,
    ).run()  # fmt: skip
    rows = read_metrics(Path(summary["run_dir"]) / "metrics.jsonl")
    assert rows[-1]["iteration"] == 1 and np.isfinite(rows[-1]["ppo/loss"])
    assert rows[-1]["train/errors"] == 0.0 and 1 <= rows[-1]["train/turns"]


def test_env_scores_script_writes_the_table(tmp_path):
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks import env_scores

    doc = tmp_path / "envs.md"
    doc.write_text(f"intro\n{env_scores.START}\nold\n{env_scores.END}\noutro\n")
    scores = env_scores.main(
        ["--seeds", "2", "--no-adapters", "--out", str(tmp_path / "s.md"), "--envs-doc", str(doc)]
    )
    assert {s.kind for s in scores} == {"random", "good"} and len(scores) >= 12
    good = {s.label: s for s in scores if s.kind == "good"}
    assert good["Maze (4x4)"].success == 1.0 and good["Wordle (487 words)"].success == 1.0
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert (
        "| Maze (4x4) | good | 1.00 | 1.00 |" in text and (tmp_path / "s.png").stat().st_size > 1000
    )


@pytest.mark.parametrize("env_id", [TQ, GMC])
def test_lm_oracle_envs_pass_check_env(env_id, tiny_lm):
    from agentrl.envs.check import check_text_env

    model, tok = tiny_lm
    results = check_text_env(
        env_id, {"oracle": "lm", "oracle_model": LMOracle(model, tok)}, seeds=(0, 1)
    )
    assert all(r.ok for r in results), [str(r) for r in results if not r.ok]
