"""Which TextArena games agentrl's adapter plays offline (the table in docs/envs.md).

For every id of TextArena's registry that has a ``-raw`` variant: make
``agentrl/TextArena-v0`` with ``game=<id>`` (the adapter's check: the game constructs,
resets for one player with a single-player state, and answers a first move, all with the
network switched off), then play one episode (reset seed 0) to its end, also with the
network off, with a fixed cycle of moves: a well-formed one for the games of ``MOVES``,
else ``FIXED_MOVES`` (mostly invalid in any given game, so those episodes end on
TextArena's two-invalid-moves rule). Each game gets ``--timeout`` seconds. Prints a markdown table per outcome and the Python tuple of the ids
that played to the end. Usage::

    python benchmarks/textarena_offline.py            # every id (a few minutes)
    python benchmarks/textarena_offline.py Bandit-v0 Wordle-v0
"""

from __future__ import annotations

import argparse
import signal
import time
from dataclasses import dataclass
from types import FrameType

import gymnasium as gym

import agentrl.envs  # noqa: F401  (registers agentrl/TextArena-v0)
from agentrl.envs.adapters import require
from agentrl.envs.adapters.offline import no_network
from agentrl.envs.adapters.textarena_games import TextArenaGameError, game_ids

FIXED_MOVES = ("[1]", "[up]", "[2]", "[left]", "[A C]", "[3]", "[down]", "[right]")
MOVES: dict[str, tuple[str, ...]] = {  # game name (before "-v0") -> a well-formed move cycle
    "2048": ("[Up]", "[Left]", "[Down]", "[Right]"),
    "Bandit": ("[red]",),
    "Blackjack": ("[Stand]",),
    "Secretary": ("[continue]",),
    "ThreeCardMonte": ("[1]",),
    "GuessTheNumber": tuple(f"[{n}]" for n in range(1, 51)),
    "Mastermind": ("[1 2 3 4]",),
    "FrozenLake": ("[down]", "[right]"),
}


class Timeout(Exception):
    """A game ran past ``--timeout`` seconds."""


@dataclass
class Outcome:
    game: str
    verdict: str  # "plays", "refused", "crashed", "timeout"
    detail: str
    seconds: float


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout


def check(game: str, timeout: int) -> Outcome:
    """Make the game through the adapter and play one episode, network off."""
    start = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        env = gym.make("agentrl/TextArena-v0", game=game)
        with no_network() as attempts:
            env.reset(seed=0)
            turns, done, terminated, info = 0, False, False, {}
            while not done:
                moves = MOVES.get(game.split("-v0")[0], FIXED_MOVES)
                move = moves[turns % len(moves)]
                _, _, terminated, truncated, info = env.step(move)
                turns, done = turns + 1, terminated or truncated
        end = "terminated" if terminated else "truncated"
        net = f"; blocked network: {attempts.summary()}" if attempts else ""
        detail = f"{end} after {turns} turns ({str(info.get('reason', ''))[:60]}){net}"
        return Outcome(game, "plays", detail, time.perf_counter() - start)
    except TextArenaGameError as e:
        return Outcome(game, "refused", str(e), time.perf_counter() - start)
    except Timeout:
        return Outcome(game, "timeout", f"over {timeout} s", time.perf_counter() - start)
    except Exception as e:  # a game that passed the check but crashed while played
        reason = f"{type(e).__name__}: {str(e)[:200]}"
        return Outcome(game, "crashed", reason, time.perf_counter() - start)
    finally:
        signal.alarm(0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("games", nargs="*", help="ids to check (default: every id)")
    p.add_argument("--timeout", type=int, default=60)
    args = p.parse_args()
    ta = require("textarena", "textarena")
    games = args.games or game_ids(ta.envs.registration.ENV_REGISTRY)
    outcomes = []
    for game in games:
        outcome = check(game, args.timeout)
        outcomes.append(outcome)
        print(f"{outcome.verdict:8s} {game:40s} {outcome.seconds:6.1f}s  {outcome.detail[:160]}")
    print(f"\ntextarena {ta.__version__}: {len(outcomes)} ids")
    for verdict in ("plays", "crashed", "timeout", "refused"):
        rows = [o for o in outcomes if o.verdict == verdict]
        print(f"\n{verdict}: {len(rows)}\n\n| game | detail |\n|---|---|")
        for o in rows:
            print(f"| `{o.game}` | {o.detail.replace('|', '/')} |")
    print("\nTEXTARENA_OFFLINE_GAMES = (")
    for o in outcomes:
        if o.verdict == "plays":
            print(f'    "{o.game}",')
    print(")")


if __name__ == "__main__":
    main()
