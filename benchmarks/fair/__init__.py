"""The fair comparison of ``benchmarks/sample_efficiency.py``: its algorithms and envs
(:mod:`.setup`), tuning grids and seed checks (:mod:`.grid`), the tuned-values file
(:mod:`.tuned`), the report's statistics (:mod:`.report`) and the cost estimate of a plan
(:mod:`.cost`). The protocol is written down in docs/tuning.md."""
