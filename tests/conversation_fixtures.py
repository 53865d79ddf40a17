"""Toy conversation episodes shared by the ArCHer tests of shared prefixes (the prefill store,
the critic's one-pass encoding)."""

from __future__ import annotations

from agentrl.policy import Policy
from agentrl.types import Episode, Turn


def conversation_episodes(policy: Policy) -> list[Episode]:
    """Three conversations of 3-4 turns: each turn's context extends the previous one."""
    enc = policy.tokenizer.encode
    episodes = []
    for e, turns in enumerate((4, 3, 4)):
        out = []
        for t in range(turns):
            obs = f"room {e} clue {t}"
            first = t == 0
            out.append(
                Turn(
                    observation=obs,
                    action="A" if (e + t) % 2 else "B",
                    prompt_ids=policy.encode_prompts([obs])[0]
                    if first
                    else enc(f"\n{obs}\nAction: ", add_special_tokens=False),
                    action_ids=enc(("A" if (e + t) % 2 else "B") + "\n", add_special_tokens=False),
                    action_logprobs=[],
                    reward=1.0 if t == turns - 1 else 0.0,
                    terminated=t == turns - 1,
                    truncated=False,
                    next_observation="" if t == turns - 1 else f"room {e} clue {t + 1}",
                    continues=not first,
                )
            )
        episodes.append(Episode(env_id="toy", task={}, seed=e, turns=out))
    return episodes
