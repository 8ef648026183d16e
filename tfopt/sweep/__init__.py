"""``tfopt sweep``: find the best deployable model under the gates — every candidate run and measured the same way.

    from tfopt.sweep.candidates import resolve
    from tfopt.sweep.run import SweepConfig, sweep
    result = sweep(SweepConfig(base_recipe, tuple(resolve(base_recipe, ["float16", "int8"], None))))
    result.chosen, result.fronts["size"], result.row("int8").latency

``candidates.py`` (the table, ``--recipes``) · ``run.py`` (the one path: prepare → candidates → latency →
choose → write) · ``jobs.py`` (what runs in workers) · ``executors.py`` (local processes, Ray) ·
``result.py`` (rows, Pareto fronts, the choice, ``tfopt.sweep/1``).  Importing this package imports nothing heavy.
"""
