"""Deploy as a library: typed report records, report.json's schema, `edgekit.deploy(model,
target, options) -> Deployment`, in memory or as a bundle."""

from __future__ import annotations

import dataclasses
import json
import typing

import numpy as np
import pytest
from helpers import REPO

import edgekit
from edgekit.bundle import Bundle
from edgekit.errors import UsageError
from edgekit.options import DeployOptions
from edgekit.report import SCHEMA_VERSION, DeployReport, Role


def test_every_report_field_is_typed():
    """No top-level field of the report is a loose dict: each is a record, a tuple of records
    or a plain value."""
    hints = typing.get_type_hints(DeployReport)
    loose = [name for name, kind in hints.items() if "dict" in str(kind)]
    assert loose == []
    assert dataclasses.fields(DeployReport) and DeployReport.__dataclass_params__.frozen


def test_a_bundle_report_reads_back_equal(resnet8_m7):
    """report.json carries the schema version and reads back into the same records."""
    data = json.loads((resnet8_m7.path / "report.json").read_text())
    assert data["schema"] == SCHEMA_VERSION == 2
    again = Bundle.load(resnet8_m7.path).report
    # the profile reads back as the profile file's loader reads it (its own equality aside)
    assert again.target.to_dict() == resnet8_m7.report.target.to_dict()
    assert dataclasses.replace(again, target=resnet8_m7.report.target) == resnet8_m7.report
    assert again.to_dict() == data
    # typed records, and report.json's spelling still reads
    assert again.verification.kernel_check.samples >= 20
    assert again["metrics"] is again.metrics  # the report itself reads like report.json too
    assert again.verification["runtime"] == again.verification.runtime
    assert again.tflm.arena_source and again.quantization.analysis["layers"]
    # schema 1's figure keys in `tflm` are copies of the metrics, not a second definition
    assert data["tflm"]["arena_minimum_bytes"] == again.metrics.tensor_arena_minimum_bytes


def test_a_schema_1_report_still_loads(resnet8_m7, tmp_path):
    data = json.loads((resnet8_m7.path / "report.json").read_text())
    del data["schema"]
    for key in ("labels",):
        data["data"]["calibration"].pop(key, None)
    (tmp_path / "report.json").write_text(json.dumps(data))
    report = Bundle.load(tmp_path).report
    assert report.schema == 1 and report.metrics == resnet8_m7.report.metrics


def test_a_report_with_a_wrong_shape_is_one_usage_error(resnet8_m7, tmp_path):
    data = json.loads((resnet8_m7.path / "report.json").read_text())
    data["ops"] = {"not": "a list"}
    (tmp_path / "report.json").write_text(json.dumps(data))
    with pytest.raises(UsageError, match="not an edgekit report"):
        Bundle.load(tmp_path)


def test_options_are_checked_when_made():
    with pytest.raises(UsageError, match="unknown task"):
        DeployOptions(task="segmentation")
    with pytest.raises(UsageError, match="unknown calibration method"):
        DeployOptions(calibration_method="minmaxx")
    with pytest.raises(UsageError, match="unknown deploy option"):
        DeployOptions().with_(calibraton="x.npy")
    with pytest.raises(UsageError, match="unknown deploy option"):
        edgekit.deploy("model.keras", "coral", calibraton="x.npy")
    with pytest.raises(UsageError, match="unknown deploy option"):  # a dict of options too
        edgekit.deploy("model.keras", "coral", {"calibraton": "x.npy"})
    with pytest.raises(UsageError, match="no target given"):
        edgekit.deploy("model.keras", None)
    with pytest.raises(UsageError, match="at least 1"):
        DeployOptions(min_calibration_samples=-1)
    assert DeployOptions(keep_float="dense/out").keep_float == ("dense/out",)


def test_deploy_in_memory_writes_nothing(keras3_digits_model, digits_data, tmp_path, monkeypatch):
    """write_bundle=False: the same stages and report, nothing on disk (what TargetFitCheck
    and `edgekit fit` use)."""
    monkeypatch.chdir(tmp_path)
    x = digits_data[1].x[:64]
    options = DeployOptions(calibration=x, validation=x, analysis=False, write_bundle=False)
    done = edgekit.deploy(keras3_digits_model, "cortex-m4", options)
    assert done.path is None and list(tmp_path.iterdir()) == []
    assert done.ok and done.report.status == "deployed"
    assert done.report.metrics.tensor_arena_bytes > 0 and done.report.artifacts == ()
    assert done.deployed.size_bytes == done.report.metrics.model_bytes
    assert {s.name for s in done.report.steps} >= {"load model", "convert int8", "verify"}
    with pytest.raises(UsageError, match="no bundle"):
        done.file(Role.DEPLOYED_MODEL)
    # the same deploy as a bundle: the same figures
    written = edgekit.deploy(keras3_digits_model, "cortex-m4", options, write_bundle=True)
    assert written.path.is_dir() and written.file(Role.DEPLOYED_MODEL).is_file()
    assert written.report.metrics.model_bytes == done.report.metrics.model_bytes
    assert np.isclose(written.report.metrics.top1_agreement, done.report.metrics.top1_agreement)


def test_the_pipeline_only_sequences():
    """The pipeline stays a sequence of stage calls (issue 17: ≤ 350 lines)."""
    lines = (REPO / "edgekit" / "pipeline.py").read_text().splitlines()
    assert len(lines) <= 350
