"""``jsontext.loads`` gives what ``json.loads`` gives: the same values (floats to the bit, ints of any
size, keys in order) and the same errors, on random documents and on the texts where orjson and the
standard library part ways."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perf_pipeline.jsontext import loads


def _same(a: Any, b: Any) -> bool:
    """Equal values of equal types, floats compared by their bits (NaN, -0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and (a == b or (math.isnan(a) and math.isnan(b)))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**70), 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text())
_documents = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                            st.dictionaries(st.text(max_size=5), inner, max_size=5)),
                          max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(document=_documents, indent=st.sampled_from([None, 2]))
def test_documents_read_as_json_loads_reads_them(document: Any, indent: int | None) -> None:
    text = json.dumps(document, indent=indent)
    assert _same(loads(text), json.loads(text))


# Decimal texts of up to 19 significant digits and any exponent: orjson must round them as Python does.
_mantissas = st.integers(0, 10**19 - 1).map(str)
_numbers = st.builds(lambda sign, digits, point, exponent: f"{sign}{digits[:point] or '0'}"
                     f"{'.' + digits[point:] if digits[point:] else ''}e{exponent}",
                     st.sampled_from(["", "-"]), _mantissas, st.integers(0, 19), st.integers(-340, 330))


@settings(max_examples=2000, deadline=None)
@given(number=_numbers)
def test_decimal_texts_round_as_python_rounds_them(number: str) -> None:
    text = f'{{"value": {number}, "list": [{number}]}}'
    assert _same(loads(text), json.loads(text))


@pytest.mark.parametrize("text", [
    "123456789012345678901234567890", "-9223372036854775809", "18446744073709551616", '{"a": [1, {"b": 2e19}]}',
    '{"a": NaN, "b": -Infinity}', "[1e400]", '{"a": 1, "a": 2}', '"\\ud800"', "-0.0", "1.0e-400", " [1] "])
def test_where_orjson_differs_json_loads_reads(text: str) -> None:
    assert _same(loads(text), json.loads(text))


@pytest.mark.parametrize("text", ['{"a": 1', "[1,]", "", '{"a": 1} x', "\ufeff{}", "01", '"\x01"'])
def test_invalid_texts_raise_json_loads_error(text: str) -> None:
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(ValueError) as raised:
        loads(text)
    assert str(raised.value) == str(expected.value)
    assert type(raised.value) is type(expected.value)
