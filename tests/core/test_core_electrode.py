"""The pulse judgement (stim/electrode.py judge), run by pytest and on MicroPython's VM alike:
the same integers the pulse-done interrupt compares, on both interpreters."""

from coreenv import electrode, req

RAIL, OPEN, SHORT = 60000, 30000, 400  # counts: impossible, open and short limits


def judge(m, fresh=True, ref=False, prev=0):
    return electrode.judge(m, fresh, ref, prev, RAIL, OPEN, SHORT)


@req("SR-6")
def test_each_limit_is_inclusive_and_names_its_fault():
    assert judge(RAIL) == electrode.SENSE
    assert judge(RAIL - 1) == electrode.OPEN
    assert judge(OPEN) == electrode.OPEN
    assert judge(OPEN - 1) == electrode.OK
    assert judge(SHORT + 1) == electrode.OK
    assert judge(SHORT) == electrode.SHORT
    assert judge(0) == electrode.SHORT


@req("SR-6")
def test_a_missing_fresh_peak_is_a_short_only_against_a_fair_reference():
    residue = 5000  # above the short limit: what a falling load leaves in the hold
    strong = 4 * SHORT + 1  # the previous reading, well above what a short gives
    assert judge(residue, fresh=False, ref=True, prev=strong) == electrode.SHORT
    assert judge(residue, fresh=False, ref=True, prev=4 * SHORT) == electrode.OK
    assert judge(residue, fresh=False, ref=False, prev=strong) == electrode.OK
    assert judge(residue, fresh=True, ref=True, prev=strong) == electrode.OK


def test_the_judgement_is_a_small_int_for_every_reading():
    for m in range(0, 65536, 997):
        assert judge(m) in (electrode.OK, electrode.OPEN, electrode.SHORT, electrode.SENSE)
