"""SR-16 from the laptop: a tool that needs the REPL (flash, runtime) on a unit whose console is
locked asks the wearer for maintenance through the host protocol, says what to press, and goes
on only once the firmware stopped for it. Against the whole firmware on the simulated wearable
(host_tools/testing/unit_serial.py)."""

from __future__ import annotations

import pytest

from host_tools.device import DeviceError, ask_maintenance
from host_tools.testing.hostproto import unit_on
from host_tools.testing.unit_serial import UnitDeviceIO

pytestmark = pytest.mark.req("SR-16")


def test_the_wearers_plus_lets_the_tool_in(make_unit):
    unit = unit_on(make_unit, "wearable_v1", paired=False)
    unit.answer_hosts("plus", after_s=2.0)
    said: list[str] = []
    assert ask_maintenance(UnitDeviceIO(unit), "/dev/ttyACM0", said.append) is True
    assert "press PLUS on the unit within 15 s" in said[0]
    unit.run_for(0.5)
    assert unit.state == "repl" and unit.logs("maintenance")


def test_minus_or_no_press_keeps_the_tool_out_and_says_what_to_do(make_unit):
    for button in ("minus", None):
        unit = unit_on(make_unit, "wearable_v1", paired=False)
        unit.answer_hosts(button, after_s=1.0)
        with pytest.raises(DeviceError) as e:
            ask_maintenance(UnitDeviceIO(unit), "/dev/ttyACM0", lambda _s: None)
        assert e.value.kind == "maintenance_refused"
        assert ("MINUS pressed" if button else "no press within 15 s") in e.value.msg
        assert "MODE held" in e.value.hint
        assert unit.state == "main"


def test_a_session_on_is_never_interrupted_for_maintenance(make_unit):
    from host_tools.testing.hostproto import keep_alive, ok

    unit = unit_on(make_unit, "wearable_v1")
    ok(unit, "start")
    keep_alive(unit, unit.chip.t_s + 1.0, every_s=0.5)
    with pytest.raises(DeviceError) as e:
        ask_maintenance(UnitDeviceIO(unit), "/dev/ttyACM0", lambda _s: None)
    assert "stop first" in e.value.msg and unit.state == "main"
