"""Benchmark scripts that produce the tables in ``docs/`` (not part of the installed package).

A package only so that tests and Ray actors can ``import benchmarks.rollout_throughput``
from the repository root.
"""
