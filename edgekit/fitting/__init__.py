"""`edgekit fit`: the most accurate model that fits a device, found and proven on the target.

The modules, in the order a search uses them:

- :mod:`~edgekit.fitting.budgets`: the budgets, filled from the profile, and each one's
  verdict on a deploy's measured figures;
- :mod:`~edgekit.fitting.sensitivity`: a cheap per-group pass that narrows the space;
- :mod:`~edgekit.fitting.space`: the candidates (channels cut per group, criterion,
  low-rank, calibration, mixed precision);
- :mod:`~edgekit.fitting.trial`: one candidate made, fine-tuned by distillation, deployed;
- :mod:`~edgekit.fitting.jobs` and :mod:`~edgekit.fitting.runners`: trials as plain data,
  run here, in local worker processes or on Ray (:mod:`~edgekit.fitting.ray_runner`);
- :mod:`~edgekit.fitting.search`: Optuna's constrained multi-objective TPE, resumable;
- :mod:`~edgekit.fitting.greedy`: the NetAdapt-style greedy arm;
- :mod:`~edgekit.fitting.api`: :func:`edgekit.fit`, which runs them all and deploys the
  chosen model.

>>> from edgekit.fitting.budgets import Budgets
>>> Budgets(max_instructions=2_000_000).max_instructions
2000000
"""
