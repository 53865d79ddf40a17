"""``agentrl check-env``: Gymnasium's env checker plus agentrl's own checks for text envs.

:func:`check_text_env` runs, in order (a failed ``make`` stops the rest). The first four
(and an episode that raises) are requirements: what Gymnasium needs, and text spaces, without
which agentrl cannot act; a failed one is a ``FAIL``. The rest are agentrl's conventions: a
failed one is a ``WARN`` that says how to fix it, and the env still trains.

- ``make``: ``gymnasium.make(id, **kwargs)`` works (aliases such as ``maze`` resolve).
- ``gymnasium``: :func:`gymnasium.utils.env_checker.check_env` passes with no warning.
- ``text spaces``: observation and action spaces are ``gymnasium.spaces.Text``.
- ``printable``: every observation of a few episodes is a string inside the observation
  space (a requirement) made of printable characters (a convention).
- ``info keys``: agentrl's optional info keys (``success`` and ``task_id`` on reset, also
  ``invalid_action`` on step) have their types when present; absent ones are noted (a plain
  Gymnasium env trains without them).
- ``conversation keys`` (only with ``conversation=True``): every step info has a non-empty
  str ``message`` and reset info's ``instructions``, if any, is a non-empty str
  (:mod:`agentrl.envs.conversation`).
- ``determinism``: the same seed and actions give the same task, observations and rewards.
- ``bad actions``: empty, binary-junk and 10,000-character actions are answered, not raised.
- ``episode ends``: junk actions end the episode within ``max_steps`` steps.
- ``step after done``: stepping a finished episode raises an error that says so.

Actions come from the env's scripted ``random`` policy when it has one, else from
``action_space.sample()`` seeded by the episode seed.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

STEP_INFO_KEYS = ("success", "invalid_action", "task_id")
RESET_INFO_KEYS = ("success", "task_id")
BAD_ACTIONS = ("", "\x00\x01\x02 \ufffd junk ~~~", "x" * 10_000)


@dataclass(frozen=True)
class CheckResult:
    """One check: its name, whether it passed, what went wrong (or a short note), whether
    it is a requirement, and how to fix it.

    ``required`` checks are what Gymnasium (or training on text at all) needs: the env
    makes, passes Gymnasium's checker, has text spaces, and its observations are strings
    inside its observation space. A failed one is a ``FAIL``. The other checks are
    agentrl's conventions (printable text, typed info keys, determinism, answering bad
    actions, ending episodes, refusing steps after the end): a failed one is a ``WARN``
    with its ``fix``, and the env still trains.
    """

    name: str
    ok: bool
    detail: str = ""
    required: bool = True
    fix: str = ""

    @property
    def status(self) -> str:
        """``PASS``, ``FAIL`` (a requirement failed) or ``WARN`` (a convention failed)."""
        if self.ok:
            return "PASS"
        return "FAIL" if self.required else "WARN"

    def __str__(self) -> str:
        text = f"{self.status}  {self.name}" + (f": {self.detail}" if self.detail else "")
        if not self.ok and self.fix:
            text += f"\n      fix: {self.fix}"
        return text


FIXES = {
    "printable": "strip control characters from observations (agentrl tokenizes them as text)",
    "info keys": "give info['success'] and info['invalid_action'] as bool and "
    "info['task_id'] as str, or leave them out",
    "conversation keys": "return each turn's new text in info['message'] (and the rules once "
    "in reset info['instructions']); see docs/howto_env.md",
    "determinism": "draw all randomness from self.np_random, seeded by reset(seed=...)",
    "bad actions": "answer an unparseable action with an observation saying so and "
    "info['invalid_action'] = True instead of raising (a raise ends agentrl's episode as an error)",
    "episode ends": "truncate after a maximum number of turns (e.g. register with "
    "max_episode_steps, or return truncated=True)",
    "step after done": "raise an error whose message says the episode is over and reset() is needed",
}


def _convention(result: CheckResult) -> CheckResult:
    """The same result as one of agentrl's conventions (a ``WARN`` with its fix)."""
    return CheckResult(result.name, result.ok, result.detail, False, FIXES.get(result.name, ""))


class EnvCheckError(AssertionError):
    """Raised by :func:`assert_env_ok` with every failed check in the message."""


def _action_source(env: gym.Env, env_id: str, seed: int) -> Callable[[str], str]:
    from agentrl.envs.scripted import make_scripted, policy_rng

    try:
        policy = make_scripted(env_id, "random")
    except ValueError:  # no scripted policy: sample the action space
        env.action_space.seed(seed)
        return lambda obs: str(env.action_space.sample())
    policy.reset({}, policy_rng(seed))
    return policy.act


def _play(env_id: str, kwargs: dict[str, Any], seed: int, max_steps: int) -> dict[str, Any]:
    env = gym.make(env_id, **kwargs)
    try:
        obs, info = env.reset(seed=seed)
        act = _action_source(env, env_id, seed)
        record: dict[str, Any] = {"obs": [obs], "infos": [info], "rewards": [], "ends": []}
        record["task"] = dict(getattr(env.unwrapped, "task", {}) or {})
        for _ in range(max_steps):
            obs, reward, terminated, truncated, info = env.step(act(obs))
            record["obs"].append(obs)
            record["infos"].append(info)
            record["rewards"].append(float(reward))
            record["ends"].append((bool(terminated), bool(truncated)))
            if terminated or truncated:
                break
        record["space"] = env.observation_space
        return record
    finally:
        env.close()


def _check_printable(records: list[dict[str, Any]]) -> CheckResult:
    allowed = set(string.printable)
    for rec in records:
        for obs in rec["obs"]:
            if not isinstance(obs, str):
                return CheckResult(
                    "printable", False, f"observation is {type(obs).__name__}, not str"
                )
            if not rec["space"].contains(obs):
                return CheckResult(
                    "printable",
                    False,
                    f"observation of length {len(obs)} is outside the observation space",
                )
    for rec in records:  # a requirement met; printable characters are a convention
        for obs in rec["obs"]:
            bad = sorted(set(obs) - allowed)
            if bad:
                return _convention(
                    CheckResult("printable", False, f"unprintable characters {bad[:5]} in {obs[:60]!r}")
                )
    return CheckResult("printable", True)


def _check_info(records: list[dict[str, Any]]) -> CheckResult:
    """agentrl's info keys are optional (a plain Gymnasium env trains as it is): a missing
    key is noted, a present one must have its type (``success`` / ``invalid_action`` bool,
    ``task_id`` str)."""
    absent: set[str] = set()
    types = {"success": bool, "invalid_action": bool, "task_id": str}
    for rec in records:
        for i, info in enumerate(rec["infos"]):
            keys = RESET_INFO_KEYS if i == 0 else STEP_INFO_KEYS
            absent.update(k for k in keys if k not in info)
            for k in keys:
                if k in info and not isinstance(info[k], types[k]):
                    where = "reset" if i == 0 else "step"
                    return CheckResult(
                        "info keys",
                        False,
                        f"{where} info[{k!r}] is a {type(info[k]).__name__}, not a {types[k].__name__}",
                    )
    if absent:
        return CheckResult(
            "info keys",
            True,
            f"optional keys absent: {', '.join(sorted(absent))} (agentrl then counts no episode "
            "as a success and no action as invalid)",
        )
    return CheckResult("info keys", True)


def _check_conversation(records: list[dict[str, Any]]) -> CheckResult:
    from agentrl.envs.conversation import INSTRUCTIONS_KEY, MESSAGE_KEY

    name = "conversation keys"
    has_instructions = False
    for rec in records:
        if INSTRUCTIONS_KEY in rec["infos"][0]:
            text = rec["infos"][0][INSTRUCTIONS_KEY]
            if not isinstance(text, str) or not text.strip():
                return CheckResult(name, False, f"reset info['{INSTRUCTIONS_KEY}'] is {text!r}")
            has_instructions = True
        for turn, info in enumerate(rec["infos"][1:], 1):
            if MESSAGE_KEY not in info:
                return CheckResult(name, False, f"step {turn}'s info lacks '{MESSAGE_KEY}'")
            message = info[MESSAGE_KEY]
            if not isinstance(message, str) or not message.strip():
                return CheckResult(
                    name, False, f"step {turn}'s info['{MESSAGE_KEY}'] is {message!r}"
                )
    note = "" if has_instructions else f"no info['{INSTRUCTIONS_KEY}'] (optional)"
    return CheckResult(name, True, note)


def _check_bad_actions_and_end(
    env_id: str, kwargs: dict[str, Any], max_steps: int
) -> list[CheckResult]:
    env = gym.make(env_id, **kwargs)
    results = []
    try:
        env.reset(seed=0)
        done = False
        for action in BAD_ACTIONS:
            try:
                obs, _, terminated, truncated, _ = env.step(action)
            except Exception as e:
                results.append(
                    CheckResult(
                        "bad actions",
                        False,
                        f"step({action[:20]!r}) raised {type(e).__name__}: {e}",
                    )
                )
                return results
            if not isinstance(obs, str):
                results.append(
                    CheckResult(
                        "bad actions", False, "a bad action returned a non-string observation"
                    )
                )
                return results
            if terminated or truncated:
                done = True
                break
        results.append(CheckResult("bad actions", True))
        steps = len(BAD_ACTIONS)
        while not done and steps < max_steps:
            *_, terminated, truncated, _ = env.step("???")
            done, steps = terminated or truncated, steps + 1
        if not done:
            results.append(
                CheckResult(
                    "episode ends",
                    False,
                    f"no termination or truncation after {max_steps} steps of junk actions",
                )
            )
            return results
        results.append(CheckResult("episode ends", True, f"{steps} steps"))
        try:
            env.step("???")
        except Exception as e:  # the expected outcome
            ok = "reset" in str(e).lower() or "done" in str(e).lower() or "ended" in str(e).lower()
            results.append(
                CheckResult(
                    "step after done",
                    ok,
                    "" if ok else f"raised, but the message does not say why: {e}",
                )
            )
        else:
            results.append(
                CheckResult(
                    "step after done", False, "step() after the episode ended did not raise"
                )
            )
    finally:
        env.close()
    return results


def check_text_env(
    env_id: str,
    kwargs: dict[str, Any] | None = None,
    seeds: tuple[int, ...] = (0, 1, 2),
    max_steps: int = 1000,
    gym_checker: bool = True,
    conversation: bool = False,
) -> list[CheckResult]:
    """Run every check on an env id or alias; returns one :class:`CheckResult` per check
    (``conversation=True`` adds the ``conversation keys`` check after ``info keys``)."""
    from agentrl.envs import resolve_env_id

    kwargs = dict(kwargs or {})
    try:
        env_id = resolve_env_id(env_id)
        env = gym.make(env_id, **kwargs)
    except Exception as e:
        return [CheckResult("make", False, f"{type(e).__name__}: {e}")]
    results = [CheckResult("make", True, env_id)]
    if gym_checker:
        from gymnasium.utils.env_checker import check_env

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                check_env(env.unwrapped, skip_render_check=True)
                err = ""
            except Exception as e:
                err = f"{type(e).__name__}: {e}"
        msgs = [
            str(w.message)
            for w in caught
            if "gymnasium" in w.filename and not issubclass(w.category, DeprecationWarning)
        ]
        results.append(CheckResult("gymnasium", not err and not msgs, err or "; ".join(msgs)))
    spaces_ok = isinstance(env.observation_space, gym.spaces.Text) and isinstance(
        env.action_space, gym.spaces.Text
    )
    results.append(
        CheckResult(
            "text spaces",
            spaces_ok,
            "" if spaces_ok else f"got {env.observation_space} / {env.action_space}",
        )
    )
    env.close()
    try:
        runs = [_play(env_id, kwargs, s, max_steps) for s in seeds]
        again = _play(env_id, kwargs, seeds[0], max_steps)
    except Exception as e:
        results.append(CheckResult("episodes", False, f"{type(e).__name__}: {e}"))
        return results
    results += [_check_printable(runs), _convention(_check_info(runs))]
    if conversation:
        from agentrl.rollouts.worker import is_conversational

        native = is_conversational(gym.make(env_id, **kwargs))
        results.append(
            CheckResult("conversation keys", True, "conversational: its observations are the messages")
            if native
            else _convention(_check_conversation(runs))
        )
    same = all(again[k] == runs[0][k] for k in ("task", "obs", "rewards", "ends"))
    results.append(
        _convention(
            CheckResult(
                "determinism",
                same,
                "" if same else f"seed {seeds[0]} played twice gave different episodes",
            )
        )
    )
    results += [_convention(r) for r in _check_bad_actions_and_end(env_id, kwargs, max_steps)]
    return results


def assert_env_ok(
    env_id: str,
    kwargs: dict[str, Any] | None = None,
    conventions: bool = True,
    **options: Any,
) -> None:
    """:func:`check_text_env`, raising :class:`EnvCheckError` listing the failed checks:
    every one by default, only the requirements with ``conventions=False``."""
    results = check_text_env(env_id, kwargs, **options)
    failed = [r for r in results if not r.ok and (conventions or r.required)]
    if failed:
        raise EnvCheckError(f"{env_id} failed: " + "; ".join(str(r) for r in failed))


__all__ = ["CheckResult", "EnvCheckError", "assert_env_ok", "check_text_env"]
