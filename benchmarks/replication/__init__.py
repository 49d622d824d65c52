"""Replicating the LoraHub paper's Table 1 with the hub's engine, resumably.

``plan`` holds the tasks, their fixed splits and the methods; ``cache`` one
JSON file per (task, method, seed) run; ``runs`` computes what the cache lacks;
``report`` and ``plot`` render the report from the runs alone. The command is
``benchmarks/replicate_lorahub.py``.
"""
