"""Reading JSON text fast, with the values ``json.loads`` gives.

orjson (a compiled, well-kept parser) reads a task log line or a staged payload three to four times
faster than the standard library. Where the two differ, the standard library reads the text:
- orjson refuses NaN and Infinity (which ``json.dumps`` writes and a log may hold), numbers beyond a
  double's range and lone surrogates: its error sends the text to ``json.loads``, which reads it
  or raises its own error, as before;
- orjson reads an integer beyond 64 bits as a float (Python keeps an int): such a float is at least
  2 ** 63 in magnitude, so a result holding a float that large is read again by ``json.loads``.
Everything else (objects with their keys in order, the last of a repeated key, correctly rounded
floats) reads the same, as ``perf_pipeline_tests/test_jsontext.py`` checks on random documents.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

_INT64_MAGNITUDE = 2.0 ** 63


def loads(text: str) -> Any:
    """``json.loads(text)``: the same value, or the same error (``ValueError``)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return json.loads(text) if _holds_a_huge_float(value) else value


def _holds_a_huge_float(value: Any) -> bool:
    """Whether ``value`` holds, at any depth, a float of magnitude 2 ** 63 or more."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            pending.extend(item.values())
        elif kind is list:
            pending.extend(item)
        elif kind is float and not -_INT64_MAGNITUDE < item < _INT64_MAGNITUDE:
            return True
    return False
