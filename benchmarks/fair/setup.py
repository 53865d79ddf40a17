"""What the comparison runs: the algorithms with their per-iteration trajectory counts, the
envs with their warm-start settings and return thresholds, and the seed ranges.

Every setting of an env's starting policy lives in its :class:`EnvSetting` (one place per
env); every algorithm's collection size in its :class:`AlgorithmSetting`. Everything else is
``configs/algorithm/<config>.yaml`` plus what tuning chose (docs/tuning.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlgorithmSetting:
    """One algorithm of the comparison.

    Attributes:
        label: its name in the harness (run folders ``{label}-seed{N}``, tables).
        config: the ``algorithm=`` choice, a file ``configs/algorithm/{config}.yaml``.
        per_iter: trajectories collected per iteration by default (``rollout.episodes_per_iter``).
        why: why that count.
    """

    label: str
    config: str
    per_iter: int
    why: str


_ON_POLICY = "on-policy: one update per batch, so a batch large enough for a stable gradient"
_GROUPS = "4 tasks x group_size 8; rollout.episodes_per_iter must be a multiple of group_size"

# The first four are the harness's original algorithms, in their original order.
ALGORITHM_SETTINGS: tuple[AlgorithmSetting, ...] = (
    AlgorithmSetting(
        "archer", "archer", 8, "off-policy: many critic steps on few new trajectories"
    ),
    AlgorithmSetting("ppo", "ppo", 32, _ON_POLICY + " (value head on the policy's body, GAE)"),
    AlgorithmSetting(
        "filtered_bc", "filtered_bc", 32, "clones the top fraction of a pool of batches"
    ),
    AlgorithmSetting("chai", "chai", 32, "refits its critic on a replay buffer; acts by best of k"),
    AlgorithmSetting("ppo_critic_free", "ppo_critic_free", 32, _ON_POLICY + " (no value function)"),
    AlgorithmSetting("grpo", "grpo", 32, _GROUPS),
    AlgorithmSetting("rloo", "rloo", 32, _GROUPS),
)
ALGORITHMS: dict[str, AlgorithmSetting] = {a.label: a for a in ALGORITHM_SETTINGS}
DEFAULT_PER_ITER: dict[str, int] = {a.label: a.per_iter for a in ALGORITHM_SETTINGS}

# The algorithm whose trajectory count is compared against the best baseline's.
REFERENCE = "archer"


@dataclass(frozen=True)
class EnvSetting:
    """One env of the comparison and the BC warm start every run on it begins with.

    Attributes:
        name: the ``--env`` choice (and the ``configs/env/{name}.yaml`` it selects).
        overrides: config overrides of every run on the env: the env choice and every
            ``warm_start.*`` value (so the starting policy is pinned here, not by defaults).
        thresholds: default return thresholds for "trajectories to reach" (``--thresholds``).
        why: why the env is in the comparison.
        tuning: overrides of the tuning runs only, after ``overrides``: a task set disjoint
            from the report's, so that no tuning run sees a report task (empty: the env
            cannot separate them, and tuning shares the report's tasks on other seeds).
    """

    name: str
    overrides: tuple[str, ...]
    thresholds: tuple[float, ...]
    why: str
    tuning: tuple[str, ...] = ()


def _warm_start(
    policy: str, epsilon: float, episodes: int, epochs: float, lr: float
) -> tuple[str, ...]:
    return (
        "warm_start.enabled=true",
        f"warm_start.policy={policy}",
        f"warm_start.epsilon={epsilon}",
        f"warm_start.episodes={episodes}",
        f"warm_start.epochs={epochs}",
        f"warm_start.lr={lr}",
    )


# TwentyQuestions' tuning words: one classic word for each category of the reference 10-word
# subset (agentrl.envs.twenty_questions.SUBSET), none of them in it. Every classic word is told
# apart by the same 25 questions, so the tuning game has the report game's shape (25 questions
# and 10 guesses) with other answers. The tiny model's word tokenizer spells these words in
# more pieces than the subset's (docs/tuning.md).
TUNING_WORDS: tuple[str, ...] = (
    "skateboard", "bird", "apple", "bicycle", "shoe",
    "phone", "guitar", "bed", "pencil", "hammer",
)  # fmt: skip

ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting(
        "twenty_questions",
        # the config's defaults, written out; no env= override so that an --extra env=...
        # of an older command still wins
        _warm_start("mix", 0.5, 200, 6.0, 2.0e-3),
        (-12.0, -11.0, -10.0),
        "ArCHer's own benchmark (10-word subset): the BC start plays at sampled return -13 and "
        "success 0.63 (docs/sample_efficiency.md), room to improve on both",
        tuning=(f"+env.kwargs.word_list=[{','.join(TUNING_WORDS)}]",),
    ),
    EnvSetting(
        "guess_my_city",
        ("env=guess_my_city", *_warm_start("mix", 0.5, 200, 6.0, 2.0e-3)),
        (-18.0, -16.0, -14.0),
        "credit over turns matters (a question pays off only turns later, when the city is "
        "named) and the same BC warm start leaves room both ways: measured on seed 0 (64 eval "
        "episodes), sampled success 0.06 (return -19.1), greedy 0.02 (-19.7), where the scripted "
        "'good' player scores -1.5. Wordle's warm start (same settings) scored success 0.00 with "
        "97-100% invalid guesses: the tiny model does not learn the word list from 200 games",
    ),
)
ENVS: dict[str, EnvSetting] = {e.name: e for e in ENV_SETTINGS}
DEFAULT_ENV = "twenty_questions"

# Seeds. Training env seeds are hashed from (run seed, iteration), so disjoint run seeds give
# disjoint training streams; eval seeds are consecutive from eval.seed (agentrl/play.py).
REPORT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
TUNING_SEEDS: tuple[int, ...] = (100, 101)
REPORT_EVAL_SEED = 1_000_000  # the config's eval.seed: the report curves' eval seeds
FINAL_EVAL_SEED = 2_000_000  # --final-seed: the report's re-evaluation of final policies
TUNING_EVAL_SEED = 3_000_000  # every tuning run's eval.seed
