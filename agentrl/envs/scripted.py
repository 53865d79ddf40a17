"""Scripted policies for the built-in envs: behaviour-cloning data, baselines and tests.

Every policy acts from the observation text only: it never peeks at the hidden word or
number, but rebuilds what it knows from the questions/guesses and answers in the
observation. All randomness comes from the ``numpy.random.Generator`` given to
:meth:`ScriptedPolicy.reset`, so a seed fixes the trajectory.

Kinds (:func:`make_scripted`):

- ``"random"``: a uniformly random valid action (Twenty Questions: any canonical question,
  guesses included; Guess the Number: any integer in the range).
- ``"good"``: Twenty Questions -- elimination: keep the words consistent with the answers
  so far and ask the question that splits them most evenly (ties go to a guess, then are
  broken at random), so it guesses when one or a few words remain; wins every game on the
  10-word subset in at most 6 turns. Guess the Number -- binary search on the feasible
  interval. ToolChain -- the chain read back from the task sentence (checked on the
  examples; else the shortest consistent chain); ``random`` there is a random valid plan.
- Guess My City, Wordle, Maze: see :mod:`agentrl.envs.scripted_suite`.
- ``"mix"``: each turn random with probability ``epsilon`` (0.5), else good -- mediocre
  demonstrations for warm starts that leave room for RL to improve.
"""

from __future__ import annotations

from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from agentrl.envs import game24 as g24
from agentrl.envs import guess_the_number as gtn
from agentrl.envs import ruleworld, textcraft, toolcalls
from agentrl.envs import scripted_suite as suite
from agentrl.envs import toolchain as tc
from agentrl.envs import twenty_questions as tq
from agentrl.types import Episode, TaskSpec, Turn


class ScriptedPolicy(Protocol):
    """A text policy driven by code rather than a model."""

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        """Start an episode. ``task`` is informational: built-in policies ignore it."""
        ...

    def act(self, observation: str) -> str:
        """The action for ``observation``."""
        ...


class _Base:
    rng: np.random.Generator

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        self.rng = rng


class TwentyQuestionsRandom(_Base):
    """Asks a uniformly random canonical question (guesses over ``word_list`` included)."""

    def __init__(self, word_list: str | list[str] = "subset"):
        self.questions = tq.valid_questions(tq.resolve_word_list(word_list))

    def act(self, observation: str) -> str:
        return self.questions[int(self.rng.integers(len(self.questions)))]


class TwentyQuestionsGood(_Base):
    """Elimination policy: ask the most even split of the words still consistent.

    Args:
        word_list: the prior over hidden words, as for the env (``"subset"`` by default).
            If no word of the prior fits the answers, the full table is used instead.
    """

    def __init__(self, word_list: str | list[str] = "subset"):
        self.words = tq.resolve_word_list(word_list)
        self._questions = [tq.parse_question(q) for q in tq.questions_for(self.words)]

    def candidates(self, observation: str) -> list[str]:
        """The words of the prior consistent with every answered question in ``observation``."""
        facts = [
            (q, ans == tq.YES)
            for text, ans in tq.parse_observation(observation)
            if ans != tq.INVALID and (q := tq.parse_question(text)) is not None
        ]
        for words in (self.words, tq.FULL):
            fit = [w for w in words if all(tq.holds(w, q) == yes for q, yes in facts)]
            if fit:
                return fit
        return list(self.words)  # contradictory answers: start over from the prior

    def act(self, observation: str) -> str:
        words = self.candidates(observation)
        if len(words) == 1:
            return tq.guess_text(words[0])
        options = [q for q in self._questions if q is not None]
        options += [tq.Question("guess", w) for w in words]
        scored = []
        for q in options:
            yes = sum(tq.holds(w, q) for w in words)
            scored.append(((min(yes, len(words) - yes), q.kind == "guess"), q))
        best = max(score for score, _ in scored)
        ties = [q for score, q in scored if score == best]
        return tq.question_text(ties[int(self.rng.integers(len(ties)))])


class GuessTheNumberRandom(_Base):
    """Guesses a uniformly random integer of the range stated in the observation."""

    def act(self, observation: str) -> str:
        low, high, _ = gtn.parse_observation(observation)
        return str(int(self.rng.integers(low, high + 1)))


class GuessTheNumberGood(_Base):
    """Binary search on the interval consistent with the feedback so far."""

    def act(self, observation: str) -> str:
        low, high, turns = gtn.parse_observation(observation)
        lo, hi = low, high
        for text, feedback in turns:
            guess = gtn.parse_guess(text)
            if guess is None or feedback not in ("lower", "higher"):
                continue
            if feedback == "lower":
                hi = min(hi, guess - 1)
            else:
                lo = max(lo, guess + 1)
        if lo > hi:  # contradictory feedback: fall back to the whole range
            lo, hi = low, high
        return str((lo + hi) // 2)


class MixPolicy(_Base):
    """Each turn acts with ``random`` with probability ``epsilon``, else with ``good``."""

    def __init__(self, random: ScriptedPolicy, good: ScriptedPolicy, epsilon: float = 0.5):
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.random, self.good, self.epsilon = random, good, epsilon

    def reset(self, task: TaskSpec, rng: np.random.Generator) -> None:
        self.rng = rng
        self.random.reset(task, rng)
        self.good.reset(task, rng)

    def act(self, observation: str) -> str:
        policy = self.random if self.rng.random() < self.epsilon else self.good
        return policy.act(observation)


_POLICIES: dict[str, dict[str, Any]] = {
    "agentrl/TwentyQuestions-v0": {"random": TwentyQuestionsRandom, "good": TwentyQuestionsGood},
    "agentrl/GuessTheNumber-v0": {"random": GuessTheNumberRandom, "good": GuessTheNumberGood},
    "agentrl/Game24-v0": {"random": g24.Game24Random, "good": g24.Game24Good},
    "agentrl/ToolChain-v0": {"random": tc.ToolChainRandom, "good": tc.ToolChainGood},
    "agentrl/GuessMyCity-v0": {"random": suite.GuessMyCityRandom, "good": suite.GuessMyCityGood},
    "agentrl/Wordle-v0": {"random": suite.WordleRandom, "good": suite.WordleGood},
    "agentrl/Maze-v0": {"random": suite.MazeRandom, "good": suite.MazeGood},
    "agentrl/TextCraft-v0": {"random": textcraft.TextCraftRandom, "good": textcraft.TextCraftGood},
    "agentrl/RuleWorld-v0": {"random": ruleworld.RuleWorldRandom, "good": ruleworld.RuleWorldGood},
    "agentrl/ToolCalls-v0": {"random": toolcalls.ToolCallsRandom, "good": toolcalls.ToolCallsGood},
}
KINDS = ("random", "good", "mix")


def make_scripted(env_id: str, kind: str, **kwargs: Any) -> ScriptedPolicy:
    """Build a scripted policy.

    Args:
        env_id: a Gymnasium id (``"agentrl/TwentyQuestions-v0"``) or a short alias
            (``"twenty_questions"``).
        kind: ``"random"``, ``"good"`` or ``"mix"``.
        **kwargs: ``epsilon`` for ``"mix"`` (default 0.5); the rest go to the policy
            (Twenty Questions: ``word_list``, as for the env).

    Raises:
        ValueError: unknown env id or kind (the message lists the valid ones).
    """
    from agentrl.envs import ENV_ALIASES  # here, not at import time: the package imports us
    from agentrl.envs.adapters.policies import POLICIES as ADAPTER_POLICIES

    full_id = ENV_ALIASES.get(env_id, env_id)
    policies = {**_POLICIES, **ADAPTER_POLICIES}
    if full_id not in policies:
        raise ValueError(
            f"no scripted policies for env {env_id!r}; valid env ids: {sorted(policies)}, "
            f"aliases: {sorted(ENV_ALIASES)}"
        )
    if kind not in KINDS:
        raise ValueError(f"unknown scripted policy kind {kind!r}; valid kinds: {list(KINDS)}")
    classes = policies[full_id]
    if kind not in classes and not (kind == "mix" and {"random", "good"} <= set(classes)):
        raise ValueError(
            f"env {full_id!r} has no {kind!r} scripted policy; it has: {sorted(classes)}"
        )
    if kind == "mix":
        epsilon = kwargs.pop("epsilon", 0.5)
        return MixPolicy(classes["random"](**kwargs), classes["good"](**kwargs), epsilon)
    return classes[kind](**kwargs)


def policy_rng(seed: int) -> np.random.Generator:
    """The scripted policy's generator for an episode seed (a stream apart from the env's)."""
    return np.random.default_rng([seed, 1])


def run_scripted_episode(
    env: gym.Env,
    policy: ScriptedPolicy,
    seed: int,
    task: TaskSpec | None = None,
    rng: np.random.Generator | None = None,
) -> Episode:
    """Play one episode of ``policy`` in ``env`` and record it.

    Args:
        env: a text env (wrapped by ``gymnasium.make`` or not).
        policy: the scripted policy.
        seed: the reset seed; also seeds the policy unless ``rng`` is given.
        task: the task spec; ``None`` samples one from the env's distribution.
        rng: the policy's generator (default :func:`policy_rng` of ``seed``).

    Returns:
        An :class:`~agentrl.types.Episode` with one :class:`~agentrl.types.Turn` per step
        (empty token-id and log-prob lists, the env reward and info per turn).
    """
    from agentrl.envs.conversation import MessageView

    view = env if isinstance(env, MessageView) else None  # players read the transcript
    obs, _ = env.reset(seed=seed, options={"task": task} if task else None)
    spec_task = dict(getattr(env.unwrapped, "task", task or {}))
    policy.reset(spec_task, rng if rng is not None else policy_rng(seed))
    env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    episode = Episode(env_id=env_id, task=spec_task, seed=seed)
    done, info = False, dict[str, Any]()
    while not done:
        action = policy.act(view.transcript if view is not None else obs)
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        episode.turns.append(
            Turn(
                observation=obs,
                action=action,
                prompt_ids=[],
                action_ids=[],
                action_logprobs=[],
                reward=float(reward),
                terminated=terminated,
                truncated=truncated,
                next_observation="" if done else next_obs,
                info=dict(info),
                continues=view is not None and bool(episode.turns),
                role=str(episode.turns[-1].info.get("role", "user")) if episode.turns else "user",
            )
        )
        obs = next_obs
    episode.success = bool(info.get("success", False))
    episode.env_reward = episode.total_reward
    return episode
