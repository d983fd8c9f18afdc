"""Check edgekit's TFLM source selection against a library built from a whole tree.

For every op `MicroMutableOpResolver` can register, the linker is emulated on a `libtflm.a`
compiled from every source of the tree (TFLM's core plus the objects defining the op's
`Register_*` functions, then whatever those need, to a fixed point) and each object it pulls
must be among the sources :func:`edgekit.bench.tflm_sources.library_sources` selects for
that op. Symbols defined nowhere in the library (libc, libm, libstdc++) are left to the
toolchain.

    make -f devices/mcu/boards/mps2/Makefile TFLM_DIR=TREE CPU=cortex-m4 LIB_DIR=/tmp/all \
        -j"$(nproc)" lib
    python benchmarks/tflm_kernel_selection.py TREE /tmp/all/libtflm.a

The archive's members are in the Makefile's order (sorted sources), which tells apart objects
with the same file name (`kernels/circular_buffer.cc`, `signal/src/circular_buffer.cc`).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from collections import defaultdict
from pathlib import Path

from edgekit.bench.tflm_sources import all_sources, library_sources

_SYMBOL = re.compile(r"^[^:]+:([^:]+):\s*[0-9a-f]*\s+(\w)\s+(\S+)$")
_ADD_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")


def symbols(tree: Path, library: str) -> tuple[dict, dict, dict]:
    """(defined, undefined) symbols per source, and the sources defining each symbol."""
    order = all_sources(tree)
    members = subprocess.run(
        ["arm-none-eabi-ar", "t", library], capture_output=True, text=True, check=True
    ).stdout.split()
    if members != [Path(s).name + ".o" for s in order]:
        raise SystemExit(f"{library} was not built from every source of {tree} in order")
    listing = subprocess.run(
        ["arm-none-eabi-nm", "-A", library], capture_output=True, text=True, check=True
    ).stdout
    defined, undefined = defaultdict(set), defaultdict(set)
    definers = defaultdict(list)
    position, previous = -1, None
    for line in listing.splitlines():
        match = _SYMBOL.match(line)
        if not match:
            continue
        member, kind, name = match.groups()
        if member != previous:  # nm prints members in archive order; empty ones not at all
            position, previous = position + 1, member
            while members[position] != member:
                position += 1
        source = order[position]
        if kind == "U":
            undefined[source].add(name)
        elif kind not in "Nna":
            defined[source].add(name)
            definers[name].append(source)
    return defined, undefined, definers


def pulled(
    method: str,
    selected: list[str],
    defined: dict,
    undefined: dict,
    definers: dict,
    registrations: set[str],
) -> set[str]:
    """The objects the linker takes for `method` (preferring selected ones)."""
    chosen = set(selected)
    roots = [n for n in definers if any(re.search(rf"\d+{r}Ev$", n) for r in registrations)]
    taken = {definers[n][0] for n in roots}
    taken |= {s for s in selected if s.startswith("tensorflow/") and "/micro/kernels/" not in s}
    while True:
        have = set().union(*(defined[s] for s in taken))
        need = set().union(*(undefined[s] for s in taken)) - have
        new = set()
        for name in need & definers.keys():
            if not any(source in taken for source in definers[name]):
                new.add(next((s for s in definers[name] if s in chosen), definers[name][0]))
        if not new:
            return taken
        taken |= new


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tree", type=Path)
    parser.add_argument("library")
    args = parser.parse_args()
    defined, undefined, definers = symbols(args.tree, args.library)
    header = (args.tree / "tensorflow/lite/micro/micro_mutable_op_resolver.h").read_text()
    methods = sorted(set(_ADD_METHOD.findall(header)))
    failures = 0
    for method in methods:
        selected = library_sources(args.tree, [method])
        body = header[header.index(f"TfLiteStatus {method}(") :]
        body = body[: body.index("}")]
        registrations = set(re.findall(r"\bRegister_\w+", body))
        outside = pulled(method, selected, defined, undefined, definers, registrations)
        outside -= set(selected)
        if outside:
            failures += 1
            print(f"{method}: the linker also needs {sorted(outside)}")
    print(f"{len(methods)} ops checked, {failures} need objects outside the selection")
    raise SystemExit(1 if failures else 0)


if __name__ == "__main__":
    main()
