"""Copies of messages: headers carried so that they can be published again unchanged."""

import pytest
from pamqp import encode

from framework.amqp.properties import carried_headers, copied_properties, fitted, header_frame_size
from framework.core.headers import CONVERTED_HEADER
from framework.testing import FakeChannel, make_message


def test_float_a_single_cannot_hold_is_carried_as_text() -> None:
    """1e300 and 0.1 (doubles) become their exact text; the marker names them."""
    carried = carried_headers({"price": 1e300, "ratio": 0.1, "half": 0.5, "n": 3, "s": "x"})
    assert {
        "price": "1e+300",
        "ratio": "0.1",
        "half": 0.5,
        "n": 3,
        "s": "x",
        CONVERTED_HEADER: ["price", "ratio"],
    } == carried
    assert 1e300 == float(carried["price"])


def test_nested_values_are_converted_and_named_by_their_header() -> None:
    """A double inside a table or an array converts too; the marker names the outer header."""
    carried = carried_headers({"meta": {"limits": [1e300, 0.25]}, "inf": float("inf")})
    assert {"meta": {"limits": ["1e+300", 0.25]}, "inf": float("inf")} == {
        key: value for key, value in carried.items() if key != CONVERTED_HEADER
    }
    assert ["meta"] == carried[CONVERTED_HEADER]


def test_nothing_to_convert_adds_no_marker() -> None:
    """Headers that encode as they came are left as they are, without a marker."""
    headers = {"x-bulkworker-attempts": 2, "weight": 1.5}
    assert headers == carried_headers(headers)


def test_marker_of_an_earlier_copy_is_kept_and_extended() -> None:
    """A copy of a copy keeps the names converted before and adds new ones once."""
    carried = carried_headers({CONVERTED_HEADER: ["price"], "price": "1e+300", "tax": 0.1})
    assert ["price", "tax"] == carried[CONVERTED_HEADER]


def test_copied_properties_encode_where_the_original_could_not() -> None:
    """The copy's headers encode; the raw float would have raised OverflowError."""
    message = make_message({"id": 1}, channel=FakeChannel(), tag=1, headers={"price": 1e300})
    with pytest.raises(OverflowError):
        encode.field_table({"price": 1e300})
    properties = copied_properties(message, headers={**message.headers, "x": 1})
    assert encode.field_table(properties.headers)
    assert "1e+300" == properties.headers["price"]


def test_properties_too_large_for_a_frame_leave_out_the_largest_foreign_headers() -> None:
    """Over frame_max: the largest original headers go, named; the framework's own stay."""
    message = make_message(
        {"id": 1},
        channel=FakeChannel(),
        tag=1,
        headers={"big": "x" * 5000, "medium": "y" * 3000, "small": "z"},
    )
    headers = {**message.headers, "x-bulkworker-reason": "exception", "x-bulkworker-error": "e"}
    properties = copied_properties(message, headers=headers)
    assert header_frame_size(properties, 20) > 6000
    fitted(properties, 20, 6000)
    assert header_frame_size(properties, 20) <= 6000
    assert ["big"] == properties.headers["x-bulkworker-dropped-headers"]
    assert {"medium", "small", "x-bulkworker-reason", "x-bulkworker-error"} <= set(
        properties.headers
    )


def test_properties_within_a_frame_or_without_a_limit_are_left_alone() -> None:
    """Fits, or frame_max 0 (no limit): nothing is left out and no marker is added."""
    message = make_message({"id": 1}, channel=FakeChannel(), tag=1, headers={"big": "x" * 5000})
    for frame_max in (0, 131_072):
        properties = copied_properties(message, headers=dict(message.headers))
        fitted(properties, 20, frame_max)
        assert {"big"} == set(properties.headers)
