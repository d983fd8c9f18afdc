"""`edgekit fit`'s budgets: parsed in the units the flags name, filled from the profile, refused
in one line when the target cannot measure them, and judged on a real deploy's figures."""

from __future__ import annotations

import pytest

import edgekit
from edgekit.errors import UsageError
from edgekit.fitting.budgets import Budgets, parse_positive, parse_size, verdicts
from edgekit.options import DeployOptions
from edgekit.targets import load_target


@pytest.mark.parametrize(
    "text, expected",
    [
        ("256", 256 * 1024),
        ("256K", 262144),
        ("256 KiB", 262144),
        ("1.5MB", 1572864),
        ("4096B", 4096),
        (64, 65536),
    ],
)
def test_sizes_in_the_units_people_write(text, expected):
    assert parse_size(text, "--max-ram") == expected


@pytest.mark.parametrize("text", ["-3", "0", "256 GB", "lots", "", "1e3K"])
def test_a_size_in_no_unit_we_know_is_one_line(text):
    with pytest.raises(UsageError, match="--max-flash: expected a positive size"):
        parse_size(text, "--max-flash")


def test_numbers_must_be_positive():
    assert parse_positive("2e6", "--max-instructions", "count") == 2e6
    for bad in ("0", "-1", "inf", "fast"):
        with pytest.raises(UsageError, match="--max-latency-ms: expected a positive"):
            parse_positive(bad, "--max-latency-ms", "number of milliseconds")


def test_contradictory_or_misread_budgets_are_refused():
    with pytest.raises(UsageError, match="not both"):
        Budgets(max_latency_ms=5, max_instructions=10**6)
    with pytest.raises(UsageError, match="not both"):
        Budgets(max_drop=0.01, min_accuracy=0.9)
    with pytest.raises(UsageError, match="0.01 = one point"):
        Budgets(max_drop=1.0)  # "one point" written as 1: a whole model's accuracy
    with pytest.raises(UsageError, match="0.9 = 90 %"):
        Budgets(min_accuracy=90)
    with pytest.raises(UsageError, match="--max-ram: must be positive"):
        Budgets(max_ram_bytes=-1)


def test_the_profile_fills_flash_and_ram_and_says_what_it_cannot_measure():
    m4 = load_target("cortex-m4")
    filled = Budgets().for_target(m4)
    assert filled.max_ram_bytes == m4.memory.arena_ram_bytes > 0
    assert filled.max_flash_bytes == m4.memory.model_flash_bytes > 0
    assert Budgets(max_ram_bytes=1000).for_target(m4).max_ram_bytes == 1000
    with pytest.raises(UsageError, match="not a microcontroller"):
        Budgets(max_instructions=10**6).for_target(load_target("raspberry-pi-4"))


def test_verdicts_on_a_real_deploy(keras3_digits_model, digits_data):
    """In memory, on cortex-m4 without a TFLM tree: RAM is the host TFLM estimate and says
    so; instructions are not measured, so that budget cannot hold."""
    _, calib, val = digits_data
    options = DeployOptions(
        calibration=calib.x,
        validation=(val.x, val.y),
        analysis=False,
        write_bundle=False,
        firmware=False,
    )
    done = edgekit.deploy(keras3_digits_model, "cortex-m4", options)
    m = done.report.metrics
    budgets = Budgets(max_ram_bytes=m.tensor_arena_bytes, max_instructions=10**9, max_drop=0.02)
    found = {
        v.budget: v
        for v in verdicts(
            done.report,
            budgets.for_target(done.profile),
            done.profile,
            baseline_accuracy=m.float_accuracy,
        )
    }
    assert found["max_ram_bytes"].ok and "estimate" in found["max_ram_bytes"].source
    assert found["max_flash_bytes"].measured == m.model_bytes and found["max_flash_bytes"].ok
    assert not found["max_instructions"].ok and "not measured" in found["max_instructions"].source
    assert found["max_drop"].ok, found["max_drop"]
    tight = Budgets(max_ram_bytes=m.tensor_arena_bytes - 1)
    (ram,) = verdicts(done.report, tight, done.profile)
    assert not ram.ok and ram.measured == m.tensor_arena_bytes


def test_a_trial_cuts_fine_tunes_deploys_and_is_judged(keras3_digits_model, digits_data):
    """One trial of `edgekit fit` on real parts: channels cut per group, fine-tuned by
    distillation from the original on unlabelled inputs, deployed in memory, judged."""
    import numpy as np

    from edgekit.fitting.trial import Candidate, FitData, prunable_groups, run_trial
    from edgekit.keras import keras_macs

    train, _, val = digits_data
    model = keras3_digits_model
    before = [w.copy() for w in model.get_weights()]
    groups = prunable_groups(model)
    assert groups
    m4 = load_target("cortex-m4")
    candidate = Candidate(tuple((name, 0.5) for name in groups))
    data = FitData(train.x[:512], None, val.x[:200], val.y[:200])  # no training labels
    trial, smaller = run_trial(
        model,
        candidate,
        m4,
        Budgets(max_drop=0.1).for_target(m4),
        data,
        epochs=2,
        baseline_accuracy=0.95,
    )
    assert keras_macs(smaller) < 0.6 * keras_macs(model)
    assert trial.report.metrics.macs < keras_macs(model)
    assert trial.accuracy > 0.8 and trial.ok, [v for v in trial.verdicts if not v.ok]
    assert {v.budget for v in trial.verdicts} == {"max_ram_bytes", "max_flash_bytes", "max_drop"}
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)  # the original is the teacher, untouched
    with pytest.raises(UsageError, match="share of channels"):
        Candidate((("conv1", 1.0),))


def test_a_search_keeps_its_trials_resumes_and_repeats_with_its_seed(
    keras3_digits_model, digits_data, tmp_path
):
    """Optuna's constrained TPE over real trials: stored, resumed from the storage (only the
    missing trials run), and the same seed proposes the same candidates."""
    from edgekit.fitting.search import search
    from edgekit.fitting.trial import FitData

    train, _, val = digits_data
    m4 = load_target("cortex-m4")
    data = FitData(train.x[:256], train.y[:256], val.x[:100], val.y[:100])
    budgets = Budgets(max_drop=0.2)
    seen = []
    first = search(
        keras3_digits_model,
        m4,
        budgets,
        data,
        trials=2,
        seed=3,
        storage=tmp_path / "fit.db",
        progress=seen.append,
    )
    assert len(first.trials) == 2 and first.cost == "macs"
    assert first.baseline.report.metrics.macs >= max(t.report.metrics.macs for t in first.trials)
    assert first.best is None or first.best.ok
    resumed = search(
        keras3_digits_model,
        m4,
        budgets,
        data,
        trials=3,
        seed=3,
        storage=tmp_path / "fit.db",
        progress=seen.append,
    )
    assert [t.candidate for t in resumed.trials[:2]] == [t.candidate for t in first.trials]
    assert len(resumed.trials) == 3 and sum("trial 3/3" in s for s in seen) == 1
    again = search(
        keras3_digits_model, m4, budgets, data, trials=1, seed=3, storage=tmp_path / "other.db"
    )
    assert again.trials[0].candidate == first.trials[0].candidate


def test_a_candidate_proposed_again_is_reused_not_a_trial(
    keras3_digits_model, digits_data, tmp_path
):
    """A space of two candidates: the sampler proposes one of them again; Optuna is told its
    stored figures, but it is not a trial (not in the result, the table or the count), and
    the progress says so."""
    import optuna

    from edgekit.fitting.search import STUDY, search
    from edgekit.fitting.space import SearchSpace
    from edgekit.fitting.trial import FitData

    train, _, val = digits_data
    data = FitData(train.x[:128], train.y[:128], val.x[:60], val.y[:60])
    space = SearchSpace((("conv", (0.0, 0.5)), ("hidden", (0.0, 0.25))), criteria=("l1",))
    seen: list[str] = []
    result = search(
        keras3_digits_model,
        load_target("cortex-m4"),
        Budgets(max_drop=0.5),
        data,
        trials=3,
        epochs_per_trial=0,
        seed=1,
        space=space,
        storage=tmp_path / "fit.db",
        progress=seen.append,
    )
    candidates = [t.candidate for t in result.trials]
    assert len(candidates) == 3 and len(set(candidates)) == 3
    study = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{tmp_path / 'fit.db'}")
    told = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    repeats = [t for t in told if "same_as" in t.user_attrs]
    assert len(told) == 3 + len(repeats) and repeats, "seed 1 proposes a measured one again"
    assert sum("proposed again" in line for line in seen) == len(repeats)
    assert {t.number for t in result.trials}.isdisjoint(t.number for t in repeats)

    # Without a winner the nearest miss is the most accurate trial within the resource
    # budgets, not the cheapest one
    from dataclasses import replace

    from edgekit.fitting.budgets import Verdict

    short = Verdict("max_drop", 0.01, 0.05, "accuracy")
    over = Verdict("max_ram_bytes", 1024, 2048, "arena")
    a, b, c = sorted(result.trials, key=lambda t: t.report.metrics.macs)  # b, c: dearer
    missed = tuple(replace(t, verdicts=(short, over) if t is a else (short,)) for t in (a, b, c))
    nearest = replace(result, trials=missed).closest()
    assert nearest.number == max((b, c), key=lambda t: t.accuracy).number
    cheapest = replace(result, trials=tuple(replace(t, verdicts=(over,)) for t in missed))
    assert cheapest.closest().number == a.number, "else the smallest cost reached"


def test_coral_budgets_are_the_parameter_cache_and_every_op_on_the_edge_tpu(
    keras3_digits_model, digits_data
):
    """On Coral, flash defaults to the Edge TPU's parameter cache, and a verdict asks every
    op to run on the Edge TPU, from the compiler's log where it ran, else the rule analysis."""
    import shutil

    from edgekit.fitting.budgets import EDGETPU_OPS_ON_CPU

    _, calib, val = digits_data
    coral = load_target("coral-usb")
    filled = Budgets().for_target(coral)
    assert filled.max_flash_bytes == coral.memory.parameter_cache_bytes == 8 * 2**20
    options = DeployOptions(
        calibration=calib.x, validation=(val.x, val.y), analysis=False, write_bundle=False
    )
    done = edgekit.deploy(keras3_digits_model, coral, options)
    found = {v.budget: v for v in verdicts(done.report, filled, coral)}
    placement = found[EDGETPU_OPS_ON_CPU]
    analysis = done.report.edgetpu.analysis
    if shutil.which("edgetpu_compiler") is None:
        assert placement.source.startswith("rule analysis")
        assert placement.measured == analysis["ops_on_cpu"]
    assert placement.ok == (placement.measured == 0)
    assert "parameter cache" in found["max_flash_bytes"].source
    assert found["max_flash_bytes"].measured == done.report.metrics.model_bytes


def test_latency_measured_on_a_device_through_edgekit_bench(keras3_digits_model, digits_data):
    """`device=` measures each trial with the profile's harness over a bench URI (here the
    real Linux harness on this host, `local`): that p50 is the latency verdict's figure."""
    from edgekit.fitting.trial import Candidate, FitData, run_trial

    train, _, val = digits_data
    pi4 = load_target("raspberry-pi-4")
    data = FitData(train.x[:200], None, val.x[:100], val.y[:100])
    budgets = Budgets(max_latency_ms=1000.0).for_target(pi4)
    trial, _ = run_trial(
        keras3_digits_model, Candidate(), pi4, budgets, data, epochs=0, device="local"
    )
    m = trial.report.metrics
    assert m.device_latency_ms is not None and 0 < m.device_latency_ms < 1000
    (latency,) = [v for v in trial.verdicts if v.budget == "max_latency_ms"]
    assert latency.measured == m.device_latency_ms and "on the device" in latency.source
    assert latency.ok
    with pytest.raises(UsageError, match="--device: cortex-m4's budgets are measured under QEMU"):
        from edgekit.fitting.api import check_device

        check_device(load_target("cortex-m4"), "local")


def test_instructions_become_an_estimated_latency_with_a_clock(digits_m4_bundle):
    """A profile with `clock_hz` and `cpi` turns the firmware's instructions under QEMU into
    milliseconds, labelled an estimate; without them a latency budget is refused."""
    from dataclasses import replace

    done = digits_m4_bundle  # the digits example deployed with its firmware run under QEMU
    m4 = done.profile
    clocked = replace(m4, firmware=replace(m4.firmware, clock_hz=64_000_000, cpi=1.3))
    instructions = done.report.metrics.instructions_per_inference
    assert instructions > 0
    budgets = Budgets(max_latency_ms=1000.0).for_target(clocked)
    (latency,) = [
        v for v in verdicts(done.report, budgets, clocked) if v.budget == "max_latency_ms"
    ]
    assert latency.measured == pytest.approx(instructions * 1.3 / 64e6 * 1e3)
    assert latency.source.startswith("estimate: instructions under QEMU") and latency.ok
    if not (m4.firmware.clock_hz and m4.firmware.cpi):
        with pytest.raises(UsageError, match="no clock_hz and cpi"):
            Budgets(max_latency_ms=1.0).for_target(m4)
