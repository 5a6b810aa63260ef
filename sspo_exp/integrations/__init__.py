"""Glue from our objectives to other RL engines (optional extras; each module imports its engine).

- :mod:`.verl`: SSPO and its five gates as verl policy losses (installed beside verl as ``.ci/verl.sh`` does, docs/verl.md).
"""
