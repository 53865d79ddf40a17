"""Prompts that are prefixes of one another: encode the shared prefix once.

The states of one conversation are prefixes of each other (turn ``t``'s context is the
start of turn ``t+1``'s). An algorithm that samples or scores actions at many replayed
states (ArCHer's fresh actions ``a' ~ pi(.|s)`` and its actor's ``log pi(a'|s)``) would
otherwise run the model over each state's whole context: O(turns^2) tokens per
conversation. :func:`prefix_groups` finds, among a batch of prompts, the longest ones that
hold the others as prefixes (the *roots*), so the model runs over each root once:

- sampling (:meth:`Policy.generate_shared <agentrl.policy.Policy.generate_shared>`): a
  root's KV cache, cut to each member's length, is the member's prefilled context (kept
  across calls while the weights are unchanged by :mod:`agentrl.policy.prefill_cache`);
- scoring (:meth:`Policy.branch_logprobs <agentrl.policy.Policy.branch_logprobs>`): a root
  and its members' actions are packed into one sequence, each action attending to its own
  prefix of the root and to itself (:func:`branch_layout`), so one forward pass (and one
  backward) scores every action of the conversation with the gradient of each
  ``log pi(a'|s)`` exactly as if the state were encoded alone.

Plain functions of token ids, no model: tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def prefix_groups(prompts: Sequence[Sequence[int]]) -> tuple[list[list[int]], list[int]]:
    """Group ``prompts`` under roots that hold them as prefixes.

    Returns ``(roots, root_of)``: ``roots`` are distinct prompts, none a prefix of another,
    and ``prompts[i]`` is a prefix of ``roots[root_of[i]]`` (a root is its own member).
    Roots are ordered by their first appearance in ``prompts``. Prompts are visited
    longest first, so each joins the longest root it is a prefix of; identical prompts
    share a root. Cost O(B * roots * L) id comparisons, done on tuples.
    """
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    keys = [tuple(p) for p in prompts]
    roots: list[int] = []  # prompt index of each root
    root_of = [-1] * len(prompts)
    for i in order:
        n = len(keys[i])
        for r, j in enumerate(roots):
            if keys[j][:n] == keys[i]:
                root_of[i] = r
                break
        else:
            root_of[i] = len(roots)
            roots.append(i)
    # renumber roots by first appearance, so the grouping does not depend on lengths
    first: dict[int, int] = {}
    for i in range(len(prompts)):
        first.setdefault(root_of[i], len(first))
    ordered = sorted(first, key=first.__getitem__)
    return [list(prompts[roots[r]]) for r in ordered], [first[r] for r in root_of]


def common_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """How many leading ids every one of ``prompts`` shares (0 for fewer than two prompts).

    Episodes of one env usually open with the same system prompt and rules (the first
    message of a built-in env states the game and the action format), so a batch of first
    turns shares hundreds of ids: :meth:`Policy.generate <agentrl.policy.Policy.generate>`
    and :meth:`Policy.action_logprobs <agentrl.policy.Policy.action_logprobs>` run those
    through the model once for the whole batch.
    """
    if len(prompts) < 2:
        return 0
    first = prompts[0]
    n = min(len(p) for p in prompts)
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
        if n == 0:
            break
    return n


def branch_layout(
    root_len: int, branches: Sequence[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Positions and attention of one packed sequence: a root, then its branches.

    ``branches`` are ``(prefix_len, action_len)``: an action that follows the root's first
    ``prefix_len`` ids. The packed sequence is ``root[:root_len]`` then every action in
    order. Returns ``(position_ids [T], allowed [T, T] bool, starts)`` where ``T = root_len
    + sum(action_len)``, ``starts[b]`` is where branch ``b``'s tokens begin, a root token at
    ``j`` sits at position ``j`` and attends to ``root[:j + 1]``, and branch token ``k`` of
    a branch with prefix ``L`` sits at position ``L + k`` and attends to ``root[:L]`` and to
    its own tokens ``0..k``: exactly the context it has when the state is encoded alone.
    """
    total = root_len + sum(a for _, a in branches)
    pos = torch.empty(total, dtype=torch.long)
    pos[:root_len] = torch.arange(root_len)
    allowed = torch.zeros(total, total, dtype=torch.bool)
    allowed[:root_len, :root_len] = torch.ones(root_len, root_len, dtype=torch.bool).tril()
    starts = []
    at = root_len
    for prefix, length in branches:
        if not 1 <= prefix <= root_len:
            raise ValueError(f"a branch prefix of {prefix} ids does not fit a root of {root_len}")
        starts.append(at)
        pos[at : at + length] = torch.arange(prefix, prefix + length)
        allowed[at : at + length, :prefix] = True
        allowed[at : at + length, at : at + length] = torch.ones(
            length, length, dtype=torch.bool
        ).tril()
        at += length
    return pos, allowed, starts


__all__ = ["branch_layout", "common_prefix_length", "prefix_groups"]
