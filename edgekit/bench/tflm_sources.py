"""Which TFLM sources a model's firmware needs: TFLM's core plus the kernels its resolver uses.

A TFLM tree (create_tflm_tree.py) holds ~300-660 sources; a model registers a handful of ops
(`tflm/model_ops.h`: `resolver.AddConv2D()` ...). The library is built from:

- **the core**: every source under `tensorflow/` outside the kernel folders, except test
  helpers (`*test*`, `fake_*`, `mock_*`): the interpreter, allocators, planners, flatbuffer
  parsing, TFLite's shared kernel utilities;
- **the op files**: for each `Add*()` the model calls, the registrations it makes
  (`Register_CONV_2D()`, read from the tree's `micro_mutable_op_resolver.h`) and the sources
  that define them (CMSIS-NN's when the tree has them: create_tflm_tree.py puts only one
  definition in a tree);
- **what those need**, to a fixed point: a source that includes `dir/name.h` needs the
  non-op sources of `dir/` named `name.*` or `name_*` (`conv.h` -> `conv_common.cc`,
  `irfft.h` -> `irfft_int16.cc`), and a source that names a function or a global array needs
  the non-op source that defines it (a definition starts a line; names defined in more than
  one file, such as each kernel's `Prepare`, are skipped): `arm_convolve_wrapper_s8_get_buffer_size`
  -> `arm_convolve_get_buffer_sizes_s8.c`, `sigmoid_table_uint16` -> `arm_nntables.c`.

Unused objects in a static library are never linked, so an extra file costs build time only;
a missing one is an undefined reference when the firmware links. The tests link the digits
example against its selection; `benchmarks/tflm_kernel_selection.py` checks every op the
resolver can register against a library built from a whole tree (the objects the linker
pulls for it must all be selected: 120 of 120 for the shared CMSIS-NN tree).

>>> ops_in("  if (resolver.AddConv2D() != kTfLiteOk) return kTfLiteError;")
['AddConv2D']
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgekit.errors import UsageError

SOURCE_ROOTS = ("tensorflow", "signal", "third_party")
KERNEL_DIRS = ("tensorflow/lite/micro/kernels/", "signal/micro/kernels/")
_TEST_ONLY = re.compile(r"test|^fake_|^mock_")
_DEFINES_REGISTRATION = re.compile(r"\b(Register_\w+)\s*\(\s*\)\s*\{")
_ADD_CALL = re.compile(r"\bresolver\.(Add\w+)\s*\(")
_ADD_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
# An unqualified name (`ns::f`, `x.f`, `p->f` are another namespace's function or a method).
_USED = re.compile(r"(?<!::)(?<!\.)(?<!->)\b([A-Za-z_]\w*)")
# A free function's or a global array's definition at the start of a line:
# `int32_t arm_f(int a,\n int b)\n{`, `const int8_t table[256] = {`.
_DEFINITION = re.compile(
    r"^[A-Za-z_][\w<>,*& \t]*?\b([A-Za-z_]\w*)\s*(?:\([^;{}()]*"
    r"(?:\([^;{}()]*\)[^;{}()]*)*\)\s*\{|\[[^\];]*\]\s*=)",
    re.MULTILINE,
)
_NOT_CODE = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.DOTALL)
# Where a quoted include is looked up (the Makefile's TFLM_INCLUDES, less the CPU's device).
INCLUDE_DIRS = (
    "",
    "third_party/flatbuffers/include",
    "third_party/gemmlowp",
    "third_party/ruy",
    "third_party/kissfft",
    "third_party/cmsis_nn",
    "third_party/cmsis_nn/Include",
    "third_party/cmsis/CMSIS/Core/Include",
)


def ops_in(model_ops: str) -> list[str]:
    """The resolver methods (`AddConv2D`, ...) a bundle's `model_ops.h` calls, in order."""
    return list(dict.fromkeys(_ADD_CALL.findall(model_ops)))


def all_sources(tree: Path) -> list[str]:
    """Every .cc and .c file of the tree, relative and sorted (what the Makefile compiles
    when it is given no list)."""
    return sorted(
        str(path.relative_to(tree))
        for root in SOURCE_ROOTS
        for path in (tree / root).rglob("*")
        if path.suffix in (".cc", ".c") and path.is_file()
    )


class _Tree:
    """One tree's sources, read once."""

    def __init__(self, tree: Path) -> None:
        self.root = tree
        self.sources = all_sources(tree)
        self.text = {s: (tree / s).read_text(errors="replace") for s in self.sources}
        self.defines = {s: set(_DEFINES_REGISTRATION.findall(self.text[s])) for s in self.sources}
        self.op_files = {s for s, names in self.defines.items() if names}
        self.by_dir: dict[str, list[tuple[str, str]]] = {}  # folder -> non-op (source, stem)
        for source in self.sources:
            if source not in self.op_files:
                folder, _, name = source.rpartition("/")
                self.by_dir.setdefault(folder, []).append((source, name.rsplit(".", 1)[0]))
        defined: dict[str, set[str]] = {}
        for source in self.sources:
            if source not in self.op_files:
                for name in _DEFINITION.findall(self.text[source]):
                    defined.setdefault(name, set()).add(source)
        self.definer = {name: files.pop() for name, files in defined.items() if len(files) == 1}
        self._includes: dict[str, list[str]] = {}

    def registrations(self, methods: list[str]) -> set[str]:
        """The Register_* functions the resolver's `methods` call (micro_mutable_op_resolver.h)."""
        header = (self.root / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
        bodies = {}
        starts = list(_ADD_METHOD.finditer(header))
        for match, following in zip(starts, [*starts[1:], None], strict=True):
            end = following.start() if following else len(header)
            bodies[match.group(1)] = header[match.start() : end]
        unknown = [m for m in methods if m not in bodies]
        if unknown:
            raise UsageError(
                f"model_ops.h calls {', '.join(unknown)}, which this TFLM tree's "
                "MicroMutableOpResolver does not have (a newer TFLM tree?)"
            )
        return {name for m in methods for name in re.findall(r"\bRegister_\w+", bodies[m])}

    def includes(self, path: str) -> list[str]:
        """The tree headers `path` includes directly (quoted includes only), read once."""
        if path not in self._includes:
            text = self.text.get(path)
            if text is None:
                text = (self.root / path).read_text(errors="replace")
            found = (self._header(include, path) for include in _INCLUDE.findall(text))
            self._includes[path] = [header for header in found if header]
        return self._includes[path]

    def _header(self, include: str, beside: str) -> str | None:
        for base in (beside.rpartition("/")[0], *INCLUDE_DIRS):
            candidate = f"{base}/{include}" if base else include
            if os.path.isfile(self.root / candidate):
                return os.path.normpath(candidate)
        return None

    def headers_of(self, source: str) -> set[str]:
        """The tree headers `source` includes, directly or through other headers."""
        seen: set[str] = set()
        pending = [source]
        while pending:
            for header in self.includes(pending.pop()):
                if header not in seen:
                    seen.add(header)
                    pending.append(header)
        return seen

    def implied(self, source: str) -> set[str]:
        """Non-op sources that define what `source` declares it uses (see the module doc)."""
        needed = set()
        for header in self.headers_of(source):
            folder, _, name = header.rpartition("/")
            stem = name.rsplit(".", 1)[0]
            for candidate, candidate_stem in self.by_dir.get(folder, []):
                if candidate_stem == stem or candidate_stem.startswith(stem + "_"):
                    needed.add(candidate)
        used = set(_USED.findall(_NOT_CODE.sub(" ", self.text[source])))  # not in "..." or //
        needed.update(self.definer[name] for name in used & self.definer.keys())
        return needed


def core_sources(sources: list[str]) -> list[str]:
    """TFLM's core: sources under tensorflow/ outside the kernel folders, no test helpers."""
    return [
        s
        for s in sources
        if s.startswith("tensorflow/")
        and not s.startswith(KERNEL_DIRS)
        and not _TEST_ONLY.search(Path(s).name)
    ]


def library_sources(tree: Path, methods: list[str]) -> list[str]:
    """The sources (relative to `tree`, sorted) a firmware registering `methods` needs."""
    index = _Tree(tree)
    wanted = index.registrations(methods)
    selected = set(core_sources(index.sources))
    selected.update(s for s in index.op_files if index.defines[s] & wanted)
    missing = wanted - {name for s in selected for name in index.defines[s]}
    if missing:
        raise UsageError(
            f"the TFLM tree {tree} defines no {', '.join(sorted(missing))} (the kernels of "
            "model_ops.h's ops): make the tree with create_tflm_tree.py"
        )
    pending = sorted(selected)
    while pending:
        for source in index.implied(pending.pop()) - selected:
            selected.add(source)
            pending.append(source)
    return sorted(selected)
