"""Multi-objective search over a space: objectives, algorithms, run directory, Pareto front.

* :mod:`~hwnas.search.objectives` — accuracy, latency (one per profile), params, MACs, OSE loss;
  constraints.
* :mod:`~hwnas.search.problem` — the Problem algorithms see (gene matrices, feasibility).
* :mod:`~hwnas.search.algorithms` — random, NSGA-II, LINAS and OSE behind one ask/tell interface.
* :mod:`~hwnas.search.store` — the run store, the one reader and writer of a run directory
  (run.json, evaluations.jsonl, pareto.json, hypervolume.csv) and its resume rules.
* :mod:`~hwnas.search.driver` — the driver: checks, the ask/tell loop, signals.
* :mod:`~hwnas.search.archive` — validated evaluations, budget, front and hypervolume;
  :mod:`~hwnas.search.executor` computes new configurations' expensive objectives.
* :mod:`~hwnas.search.pareto` — dominance, sorting, crowding, hypervolume.
"""
