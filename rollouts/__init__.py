"""Rollout workers (installed as ``agentrl.rollouts``)."""
