"""JSON from files edgekit did not write itself (model configs, bundle reports, database rows).

One :class:`UsageError` for every way such text can be bad: not UTF-8, not JSON, nested deeper
than anything edgekit or Keras writes (deep nesting is how a small file makes recursive code
fail), or the wrong kind of value at the top.

>>> loads('{"a": [1, 2]}', "report.json")
{'a': [1, 2]}
>>> loads("[" * 500 + "]" * 500, "report.json")
Traceback (most recent call last):
...
edgekit.errors.UsageError: report.json: JSON nested more than 100 levels deep
"""

from __future__ import annotations

import json
from typing import Any

from edgekit.errors import UsageError

MAX_DEPTH = 100  # Keras configs of nested models reach ~20; edgekit's own files ~6

_KINDS = {dict: "a JSON object", list: "a JSON list"}


def depth(value: Any) -> int:
    """How deeply lists and objects nest in `value` (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            deepest = max(deepest, level + 1)
            stack.extend((child, level + 1) for child in node)
    return deepest


def loads(
    text: str | bytes, where: str, expect: type | None = None, max_depth: int = MAX_DEPTH
) -> Any:
    """Parse `text`; `where` names the file or field in the error, `expect` (dict or list) the
    type the top level must have."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        value = json.loads(text)
    except UnicodeDecodeError as exc:
        raise UsageError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise UsageError(f"{where}: JSON nested more than {max_depth} levels deep") from None
    if depth(value) > max_depth:
        raise UsageError(f"{where}: JSON nested more than {max_depth} levels deep")
    if expect is not None and not isinstance(value, expect):
        raise UsageError(f"{where}: expected {_KINDS.get(expect, expect.__name__)}")
    return value
