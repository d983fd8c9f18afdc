"""`edgekit fit`: the most accurate model that fits a device, found and proven on the target.

Work in progress (issue 18). What exists: :mod:`edgekit.fit.budgets`, the budgets a fitted
model must meet and the verdict on a deploy's measured figures.

>>> from edgekit.fit.budgets import Budgets
>>> Budgets(max_instructions=2_000_000).max_instructions
2000000
"""
