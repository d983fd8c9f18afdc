from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_edgekit

from edgekit.errors import EdgekitError
from edgekit.targets import list_targets, load_target

BUILTIN = {
    "android-arm64",
    "raspberry-pi-4",
    "raspberry-pi-5",
    "coral-usb",
    "coral-devboard",
    "cortex-m4",
    "cortex-m7",
    "esp32-s3",
    "cortex-m33",
    "cortex-m55",
    "ethos-u55-128",
    "ethos-u55-256",
    "ethos-u65-256",
}

VALID = """
name = "my-board"
description = "test board"
family = "mcu"
runtime = "tflm"
runtime_version = "tflm"
harness = "mcu"
transport = "serial"
[quantization]
scheme = "int8"
io_dtype = "int8"
[memory]
flash_bytes = 1000
ram_bytes = 500
reserve_ram_bytes = 100
"""


def test_eight_builtin_profiles_load_with_datasheet_budgets():
    profiles = {p.name: p for p in list_targets()}
    assert set(profiles) == BUILTIN
    m4, m7, esp = profiles["cortex-m4"], profiles["cortex-m7"], profiles["esp32-s3"]
    assert (m4.memory.flash_bytes, m4.memory.ram_bytes) == (1 << 20, 256 << 10)
    assert (m7.memory.flash_bytes, m7.memory.ram_bytes) == (2 << 20, 1 << 20)
    assert (esp.memory.flash_bytes, esp.memory.ram_bytes) == (8 << 20, 512 << 10)
    assert profiles["coral-usb"].memory.parameter_cache_bytes == 8 << 20
    assert profiles["coral-usb"].quantization.io_dtype == "uint8"
    for name in ("cortex-m4", "cortex-m7", "esp32-s3"):
        assert profiles[name].runtime == "tflm" and profiles[name].harness == "mcu"
        assert profiles[name].memory.reserve_ram_bytes > 0
    for name in ("raspberry-pi-4", "raspberry-pi-5"):
        assert profiles[name].threads == 4 and profiles[name].delegate == "xnnpack"
    m33, m55 = profiles["cortex-m33"], profiles["cortex-m55"]
    assert (m33.memory.flash_bytes, m33.memory.ram_bytes) == (1 << 20, 512 << 10)
    assert m55.memory.ram_bytes == 2 << 20 and m55.npu is None


def test_ethos_u_profiles_name_vela_s_configuration():
    """Each Ethos-U profile: a Vela accelerator, system config and memory mode that Vela's
    own config file defines, the NPU's op as a coprocessor, and its 8-channel granularity."""
    import configparser
    from importlib import resources

    vela = configparser.ConfigParser()
    vela.read_string(resources.files("ethosu").joinpath("config_files/Arm/vela.ini").read_text())
    for name, accelerator in (
        ("ethos-u55-128", "ethos-u55-128"),
        ("ethos-u55-256", "ethos-u55-256"),
        ("ethos-u65-256", "ethos-u65-256"),
    ):
        profile = load_target(name)
        npu = profile.npu
        assert npu is not None and npu.accelerator == accelerator
        assert f"System_Config.{npu.system_config}" in vela.sections()
        assert f"Memory_Mode.{npu.memory_mode}" in vela.sections()
        assert accelerator.split("-")[1][:3] in npu.system_config.lower()  # u55 / u65
        assert profile.coprocessors == ("ethos-u",) and profile.channel_tile == 8
        assert profile.is_mcu and profile.memory.arena_ram_bytes
        assert load_target(profile.to_dict()["name"]).npu == npu
        back = profile.from_dict(profile.to_dict(), "report.json")
        assert back.npu == npu


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ('accelerator = "ethos-u99"', "field 'npu.accelerator' must be one of"),
        ('memory_mode = ""', "field 'npu.memory_mode' must not be empty"),
        ("speed = 3", "field 'npu.speed' is not a profile field"),
    ],
)
def test_a_bad_npu_section_is_one_error_naming_the_field(tmp_path, edit, message):
    source = Path(resources_path("ethos-u55-128.toml")).read_text()
    key = edit.split(" = ")[0]
    lines = [line for line in source.splitlines() if not line.startswith(key + " =")]
    at = lines.index("[npu]") + 1
    lines.insert(at, edit)
    path = tmp_path / "board.toml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(EdgekitError, match=message.replace(".", r"\.")):
        load_target(str(path))


def test_an_npu_needs_the_ethos_u_coprocessor(tmp_path):
    source = Path(resources_path("ethos-u55-128.toml")).read_text()
    path = tmp_path / "board.toml"
    path.write_text(source.replace('coprocessors = ["ethos-u"]', "coprocessors = []"))
    with pytest.raises(EdgekitError, match="needs ops.coprocessors"):
        load_target(str(path))


def resources_path(name: str) -> str:
    from importlib import resources

    with resources.as_file(resources.files("edgekit.profiles").joinpath(name)) as path:
        return str(path)


def test_alias_and_gpu_delegate_override():
    assert load_target("coral").name == "coral-usb"
    android = load_target("android-arm64")
    assert android.quantization.scheme == "int8"
    gpu = android.with_delegate("gpu")
    assert (gpu.quantization.scheme, gpu.quantization.io_dtype) == ("float16", "float32")
    with pytest.raises(EdgekitError, match="unknown delegate"):
        android.with_delegate("tpu9000")


def test_unknown_target_suggests_close_names():
    with pytest.raises(EdgekitError, match=r"did you mean .*cortex-m4"):
        load_target("cortex-m5")


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda t: t.replace('family = "mcu"', 'family = "toaster"'), "family"),
        (lambda t: t.replace('io_dtype = "int8"', "io_dtype = 8"), "quantization.io_dtype"),
        (lambda t: t.replace("flash_bytes = 1000", "flash_bytes = -5"), "memory.flash_bytes"),
        (
            lambda t: t.replace("reserve_ram_bytes = 100", "reserve_ram_bytes = 600"),
            "memory.reserve_ram_bytes",
        ),
        (lambda t: t.replace('runtime_version = "tflm"\n', ""), "runtime_version"),
        (lambda t: t + "\n[execution]\nthreds = 2\n", "execution.threds"),
        (
            lambda t: t.replace(
                'scheme = "int8"\nio_dtype = "int8"', 'scheme = "float16"\nio_dtype = "float32"'
            ),
            "quantization.scheme",
        ),
        (lambda t: t + '\n[delegates.gpu]\nquantization = "float16"\n', "delegates.gpu"),
        (
            lambda t: t.replace(
                "ram_bytes = 500", "ram_bytes = 500\nparameter_cache_bytes = 8388608"
            ),
            "memory.parameter_cache_bytes",
        ),
    ],
)
def test_bad_profile_is_one_error_naming_file_and_field(tmp_path, edit, field):
    path = tmp_path / "my-board.toml"
    path.write_text(edit(VALID))
    with pytest.raises(EdgekitError) as info:
        list_targets(tmp_path)
    message = str(info.value)
    assert str(path) in message and f"'{field}'" in message
    assert "\n" not in message


def test_the_documented_example_profile_loads(tmp_path):
    import re

    from helpers import REPO

    text = (REPO / "docs" / "targets.md").read_text()
    example = re.search(r"```toml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "my-board.toml").write_text(example)
    profile = load_target("my-board", tmp_path)
    assert profile.family == "mcu" and profile.firmware is not None
    assert not profile.delegate_overrides and profile.memory.parameter_cache_bytes is None


def test_invalid_toml_names_the_file(tmp_path):
    (tmp_path / "broken.toml").write_text("name = [unclosed")
    with pytest.raises(EdgekitError, match=r"broken\.toml: not valid TOML"):
        list_targets(tmp_path)


def test_user_profiles_from_dir_and_env(tmp_path, monkeypatch):
    (tmp_path / "my-board.toml").write_text(VALID)
    assert load_target("my-board", tmp_path).memory.arena_ram_bytes == 400
    monkeypatch.setenv("EDGEKIT_TARGETS_PATH", str(tmp_path))
    assert "my-board" in {p.name for p in list_targets()}
    result = run_edgekit("targets", "show", "my-board", "--json")
    assert result.returncode == 0, result.stderr
    assert '"flash_bytes": 1000' in result.stdout


def test_cli_targets_list_and_show():
    listing = run_edgekit("targets", "list")
    assert listing.returncode == 0
    for name in BUILTIN:
        assert name in listing.stdout
    for name in BUILTIN:  # runtime and version, not "tflm tflm"
        row = next(line for line in listing.stdout.splitlines() if f" {name} " in line)
        assert "tflm tflm" not in row and ("tflm (source build)" in row or "litert 2." in row)
    shown = run_edgekit("targets", "show", "esp32-s3")
    assert shown.returncode == 0 and "RAM 512 KiB" in shown.stdout
    # A person reads it: no Python reprs of dicts, lists or tuples.
    assert not any(ch in shown.stdout for ch in "{}[]'"), shown.stdout
    assert "int8, int8 inputs/outputs, per-channel weights" in shown.stdout
    unknown = run_edgekit("targets", "show", "esp32-s4")
    assert unknown.returncode == 2
    assert unknown.stderr.strip().count("\n") == 0 and "esp32-s3" in unknown.stderr
    assert "Traceback" not in unknown.stderr
