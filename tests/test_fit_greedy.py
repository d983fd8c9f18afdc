"""`edgekit fit`'s sensitivity pass and greedy arm on real parts: the digits CNN cut for
cortex-m4 without a TFLM tree (the cost is MACs then), trials deployed in memory."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.fitting.budgets import Budgets
from edgekit.fitting.greedy import greedy
from edgekit.fitting.sensitivity import narrow, sensitivity, threshold
from edgekit.fitting.trial import Candidate, FitData, run_trial
from edgekit.keras import keras_macs
from edgekit.targets import load_target

SHARES = (0.25, 0.5, 0.75)


@pytest.fixture(scope="module")
def m4():
    return load_target("cortex-m4")


@pytest.fixture(scope="module")
def data(digits_data):
    train, _, val = digits_data
    return FitData(train.x[:256], train.y[:256], val.x[:100], val.y[:100])


def _weights(model):
    return [w.copy() for w in model.get_weights()]


def _unchanged(before, model):
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_sensitivity_ranks_each_group_alone_and_narrow_cuts(keras3_digits_model, digits_data, m4):
    train, _, val = digits_data
    model = keras3_digits_model
    before = _weights(model)
    seen = []
    data = FitData(train.x[:256], None, val.x[:300], val.y[:300])
    found = sensitivity(model, m4, data, (0.0, *SHARES), progress=seen.append)
    assert found.measure == "float_accuracy" and found.baseline > 0.85
    assert found.groups == ["conv", "hidden"] and len(found.rows) == 6 == len(seen)
    assert found.macs == keras_macs(model)
    for group in found.groups:
        rows = found.of(group)
        assert [r.share for r in rows] == list(SHARES)
        saved = [r.macs_saved for r in rows]
        assert saved == sorted(saved) and 0 < saved[-1] < found.macs, (group, saved)
        assert rows[-1].drop > rows[0].drop, (group, rows)  # cutting more loses more
        assert all(r.drop == pytest.approx(found.baseline - r.accuracy) for r in rows)
    kept = narrow(found, (0.0, 0.125, *SHARES), max_drop=0.01)
    limit = threshold(0.01)
    assert set(kept) == {"conv", "hidden"}
    for group, shares in kept.items():
        assert shares[0] == 0.0 and 0.125 in shares  # unmeasured below the first failure: kept
        measured = {r.share: r.drop for r in found.of(group)}
        assert all(measured.get(s, 0.0) <= limit for s in shares), (group, shares, measured)
        assert 0.75 not in shares, (group, measured)  # -75 % loses far more than 5 points
    assert narrow(found, SHARES, max_drop=0.5) == {g: (0.0, *SHARES) for g in found.groups}
    # without labels: agreement with the original, which agrees with itself
    unlabelled = sensitivity(model, m4, FitData(data.x, None, data.x_val), (0.5,))
    assert unlabelled.measure == "top1_agreement" and unlabelled.baseline == 1.0
    assert all(0 <= r.accuracy <= 1 for r in unlabelled.rows)
    _unchanged(before, model)


def test_greedy_lowers_the_measured_cost_each_step_until_the_budgets_hold(
    keras3_digits_model, data, m4
):
    """A flash budget the original breaks: each kept step raises one group's share, lowers
    the MACs measured by the deploy, and the greedy stops at the first model within it."""
    model = keras3_digits_model
    before = _weights(model)
    original, _ = run_trial(model, Candidate(), m4, Budgets().for_target(m4), data, epochs=0)
    flash = int(0.8 * original.report.metrics.model_bytes)
    seen = []
    result = greedy(
        model,
        m4,
        Budgets(max_flash_bytes=flash, max_drop=0.2),
        data,
        shares=(0.125, 0.25, 0.5),
        max_trials=8,
        progress=seen.append,
    )
    assert result.cost == "macs" and not result.baseline.ok
    assert result.stopped == "every budget holds", result.stopped
    assert result.steps and result.last.ok and result.best is not None and result.best.ok
    assert result.last.report.metrics.model_bytes <= flash
    assert len(result.trials) <= 8 and all(t in result.trials for t in result.steps)
    previous = result.baseline
    for step in result.steps:
        was, now = dict(previous.candidate.ratios), dict(step.candidate.ratios)
        raised = [g for g in now if now[g] != was.get(g, 0.0)]
        assert len(raised) == 1 and now[raised[0]] > was.get(raised[0], 0.0), (was, now)
        assert step.report.metrics.macs < previous.report.metrics.macs
        previous = step
    # -12.5 % of conv's 16 filters rounds back to 16 on a tile of 4: passed over, no trial
    assert all(dict(t.candidate.ratios)["conv"] != 0.125 for t in result.trials)
    assert seen[0] == "measuring the original model" and any("kept" in s for s in seen)
    _unchanged(before, model)


def test_greedy_stops_at_its_trial_budget_and_says_what_still_fails(keras3_digits_model, data, m4):
    result = greedy(
        keras3_digits_model,
        m4,
        Budgets(max_flash_bytes=1000),  # no cut of this model fits 1 KB
        data,
        shares=(0.25,),
        max_trials=2,
    )
    assert len(result.trials) == 2 and len(result.steps) == 1
    assert result.stopped.startswith("2 trials run; still over: max_flash_bytes")
    assert result.best is None and not result.last.ok
    assert result.last.report.metrics.macs < result.baseline.report.metrics.macs
