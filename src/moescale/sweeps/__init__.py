"""Sweeps: a TOML spec of training runs → deterministic run specs → an executor → a SQLite
store that never loses a finished run → the run table the laws are fitted on.

- :mod:`moescale.sweeps.spec` — read and validate a spec, expand it into :class:`RunSpec` s.
- :mod:`moescale.sweeps.axes` — grid axes given as ratios and the holistic paper's grids.
- :mod:`moescale.sweeps.store` — the store (the only code that speaks SQL).
- :mod:`moescale.sweeps.runner` — the driver loop: claim, submit, heartbeat, record.
- :mod:`moescale.sweeps.executors` — where runs execute (local process pool, Ray, SLURM).
- :mod:`moescale.sweeps.analyze` — per-budget isoFLOP optima and their power laws in C.
"""
