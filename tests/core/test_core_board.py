"""Board validation (stim/board.py), run by pytest and on MicroPython's VM alike."""

import json

from coreenv import BOARD, board, raises, req


@req("FR-4")
def test_the_board_file_validates_to_itself():
    assert board.validate(json.loads(json.dumps(BOARD))) == BOARD
    assert len(BOARD["channels"]) == 2


def _broken(path, value):
    b = json.loads(json.dumps(BOARD))
    d = b
    keys = path.split(".")
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    return raises(board.BoardError, board.validate, b)


@req("FR-4")
@req("SR-3")
def test_bad_values_are_refused_naming_the_dotted_key():
    assert _broken("limits.max_peak_ma", float("nan")).key == "limits.max_peak_ma"
    assert _broken("intensity.steps", -1).key == "intensity.steps"
    assert _broken("analog.adc_vref_v", "3.3").key == "analog.adc_vref_v"
    e = _broken("boost_en", 99)
    assert e.key == "boost_en" and "boost_en" in str(e)


@req("FR-4")
def test_invalid_json_is_a_board_error():
    assert raises(board.BoardError, board.parse, "{not json").key == "<json>"


@req("FR-4")
def test_pin_helpers():
    assert board.adc_channel(26) == 0 and board.adc_channel(29) == 3
    assert board.pwm_slice(6) == (3, 0) and board.pwm_slice(9) == (4, 1)
    raises(board.BoardError, board.adc_channel, 25)
