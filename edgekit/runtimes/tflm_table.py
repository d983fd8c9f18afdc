"""Derive TFLM's op table from TFLM itself: `micro_mutable_op_resolver.h`.

Every `MicroMutableOpResolver::AddXxx()` registers either a builtin (`AddBuiltin(
BuiltinOperator_CONV_2D, ...)`) or a custom op by name (`AddCustom("SignalWindow", ...)`).
The table edgekit ships (`edgekit/data/tflm_ops.toml`) is this header parsed, never a hand list.
Regenerate it from a TFLM tree (a test checks it against `../shared/tflm/`):

    python -m edgekit.runtimes.tflm_table /path/to/tflm-tree > edgekit/data/tflm_ops.toml

>>> header = '''
...   TfLiteStatus AddConv2D(const TFLMRegistration& r = Register_CONV_2D()) {
...     return AddBuiltin(BuiltinOperator_CONV_2D, r, ParseConv2D);
...   }
...   TfLiteStatus AddWindow() {
...     return AddCustom("SignalWindow", tflite::tflm_signal::Register_WINDOW());
...   }'''
>>> parse_resolver_header(header)
({'CONV_2D': 'AddConv2D'}, {'SignalWindow': 'AddWindow'})
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"
_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")
_BUILTIN = re.compile(r"AddBuiltin\(\s*BuiltinOperator_(\w+)")
_CUSTOM = re.compile(r'AddCustom\(\s*"([^"]+)"')
# Custom ops whose name comes from a function rather than a literal.
_CUSTOM_BY_FUNCTION = {"GetString_ETHOSU": "ethos-u"}


def parse_resolver_header(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """({builtin op: method}, {custom op name: method}) from the resolver header's text."""
    builtin: dict[str, str] = {}
    custom: dict[str, str] = {}
    starts = [(m.start(), m.group(1)) for m in _METHOD.finditer(text)]
    for i, (start, method) in enumerate(starts):
        if method in ("AddBuiltin", "AddCustom"):
            continue
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[start:end]
        found = _BUILTIN.search(body)
        if found:
            builtin.setdefault(found.group(1), method)
            continue
        found = _CUSTOM.search(body)
        if found:
            custom.setdefault(found.group(1), method)
            continue
        for function, name in _CUSTOM_BY_FUNCTION.items():
            if function in body:
                custom.setdefault(name, method)
    return builtin, custom


def render_table(builtin: dict[str, str], custom: dict[str, str], origin: str) -> str:
    """The TOML file edgekit ships."""
    lines = [
        "# TFLM's op table: MicroMutableOpResolver methods, parsed from",
        f"# {origin}",
        "# by `python -m edgekit.runtimes.tflm_table TREE`. Do not edit by hand.",
        "",
        "[builtin]",
        *(f'{op} = "{method}"' for op, method in sorted(builtin.items())),
        "",
        "[custom]",
        *(f'"{op}" = "{method}"' for op, method in sorted(custom.items())),
    ]
    return "\n".join(lines) + "\n"


def table_from_tree(tree: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    path = Path(tree) / HEADER
    return parse_resolver_header(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m edgekit.runtimes.tflm_table TFLM_TREE", file=sys.stderr)
        return 2
    builtin, custom = table_from_tree(args[0])
    sys.stdout.write(render_table(builtin, custom, HEADER))
    return 0


if __name__ == "__main__":
    sys.exit(main())
