"""stim/unit.py: what the buttons and the host share. The unit gets its stimulator handed in,
so here it gets a stand-in (pytest-mock) and each test checks what the unit asks of it and
what it decides itself: sessions, refusals, the keep-alive, when the flash is written."""

from __future__ import annotations

import json

import pytest

from host_tools.sim.rig import FirmwareRig


@pytest.fixture
def rig():
    return FirmwareRig("pico")


@pytest.fixture
def fw(rig):
    """The firmware modules the unit uses, loaded as on the device."""

    class M:
        unit = rig.import_module("stim.unit")
        session = rig.import_module("stim.session")
        settings = rig.import_module("stim.settings")
        electrode = rig.import_module("stim.electrode")
        limits = rig.import_module("stim.limits")
        programs = rig.import_module("stim.programs")
        stimulator = rig.import_module("stim.stimulator")
        feedback = rig.import_module("stim.feedback")
        hostcmd = rig.import_module("stim.hostcmd")

    return M


@pytest.fixture
def stim(mocker, rig, fw):
    """A stimulator stand-in with two channels, nothing running, no output possible."""
    s = mocker.Mock(name="stimulator")
    s.channels = [object(), object()]
    s.ch = [fw.stimulator.ChannelState(0), fw.stimulator.ChannelState(0)]
    s.program = fw.programs.PROGRAMS[0]
    s.board = rig.board
    s.max_step.return_value = 40
    s.running.return_value = False
    s.fading.return_value = False
    s.any_step.return_value = False
    s.any_fault.return_value = False
    s.output_possible.return_value = False
    s.steps.side_effect = lambda: [c.step for c in s.ch]

    def set_step(ch, step, now):
        s.ch[ch].step = step

    s.set_step.side_effect = set_step
    return s


def make(rig, fw, stim, channels="both"):
    cfg = fw.settings.defaults(rig.board)
    cfg["channels"] = channels
    return fw.unit.Unit(rig.board, stim, cfg, 0, fw.feedback.Player())


@pytest.fixture
def rig_logs(capsys):
    """The firmware's log lines so far (they go to the console: stdout here)."""
    seen: list[dict] = []

    def read(ev=None):
        for line in capsys.readouterr().out.splitlines():
            if line.startswith("{"):
                seen.append(json.loads(line))
        return [r for r in seen if ev is None or r.get("ev") == ev]

    return read


def on(u, now=0):
    u.switch(now)
    assert u.state() == 1  # idle


def test_a_session_starts_step_1_on_the_selected_channels_only(rig_logs, rig, fw, stim):
    u = make(rig, fw, stim, channels="2")
    on(u)
    u.start(100)
    assert u.state() == fw.session.RUNNING
    stim.clear_faults.assert_called_once_with()
    stim.set_step.assert_called_once_with(1, 1, 100)  # channel 2 (0-based 1), step 1
    assert rig_logs("session")[-1]["state"] == "start"


@pytest.mark.req("SR-10")
def test_no_session_starts_on_an_empty_battery(rig_logs, rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.battery_reading(2.0, 1.0, 50)  # under every board's cut-off
    assert u.start_refusal()[0] == "battery"
    u.start(100)
    assert u.state() == fw.session.IDLE
    stim.set_step.assert_not_called()
    assert rig_logs("refused")[-1]["limit"] == "battery"


def test_start_refusals_name_the_reason_and_change_nothing(rig, fw, stim):
    u = make(rig, fw, stim)
    assert u.start_refusal()[0] == "state"  # off
    on(u)
    assert u.start_refusal() is None
    u.toggle_lock()
    assert u.start_refusal()[0] == "locked"
    assert u.state() == fw.session.IDLE
    stim.set_step.assert_not_called()


@pytest.mark.req("SR-3")
def test_a_step_over_a_cap_is_refused_logged_and_not_recorded(rig_logs, rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.set_step.side_effect = fw.limits.LimitError("max_step", "over the cap")
    u.set_step(0, 41, 10)
    assert rig_logs("refused")[-1]["limit"] == "max_step"
    assert stim.ch[0].step == 1  # as it was
    u.stop(20, "host")
    stim.pause.assert_called_once_with()


@pytest.mark.req("SR-2")
def test_plus_and_minus_move_each_selected_channel_one_step_and_minus_stops_at_zero(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    u.step_selected(1, 10)
    assert [c.step for c in stim.ch] == [2, 2]
    stim.ch[1].step = 0  # channel 2 stopped by itself
    stim.set_step.reset_mock()
    u.step_selected(-1, 20)
    stim.set_step.assert_called_once_with(0, 1, 20)  # no step below 0 for channel 2


@pytest.mark.req("SR-2")
def test_plus_with_a_faulted_channel_restarts_only_that_channel(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.ch[1].step = 10
    stim.ch[0].step = 0
    stim.ch[0].fault = fw.electrode.OPEN  # stopped by its electrode
    stim.set_step.reset_mock()
    u.step_selected(1, 10)
    stim.set_step.assert_called_once_with(0, 1, 10)  # channel 2 not raised
    u.step_selected(1, 20)  # the fault is behind: both rise by one
    assert [c.step for c in stim.ch] == [2, 11]


@pytest.mark.req("SR-14")
def test_the_unit_makes_the_flash_write_path_refuse_while_output_can_run(rig, fw, stim):
    """Beyond deferring its own saves, the unit installs the write path's guard with the
    stimulator's output_possible: any write tried while output can run is refused."""
    make(rig, fw, stim)
    stim.output_possible.return_value = True
    with pytest.raises(fw.settings.OutputOn):
        fw.settings.save(fw.settings.defaults(rig.board))
    with pytest.raises(fw.settings.OutputOn):
        fw.settings.append_history({"program": "tens_burst"})


@pytest.mark.req("SR-14")
def test_settings_changed_during_output_are_written_only_once_the_output_is_off(
    rig, fw, stim, mocker
):
    save = mocker.patch.object(fw.settings, "save")
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.output_possible.return_value = True
    u.next_channels()
    assert u.cfg["channels"] == "1"  # in force at once
    u.tick(10)
    save.assert_not_called()  # not while output can run
    stim.output_possible.return_value = False
    u.tick(20)
    save.assert_called_once_with(u.cfg)


@pytest.mark.req("SR-12")
def test_a_host_controlled_session_ramps_down_when_the_host_goes_quiet(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.host_takes_control()
    u.host_seen(0)
    u.start(0)
    stim.running.return_value = True
    u.tick(3000)  # ms: the keep-alive (docs/protocol.md), exactly: still alive
    stim.fade_out.assert_not_called()
    u.tick(3001)
    stim.fade_out.assert_called_once_with(2000, 3001)  # ramps to zero over 2 s
    assert u.state() == fw.session.ENDING and not u.host_controlled


def test_a_wearer_session_has_no_keep_alive(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.running.return_value = True
    u.tick(60_000)
    stim.fade_out.assert_not_called()
    assert u.state() == fw.session.RUNNING


@pytest.mark.req("SR-9")
def test_the_session_timer_fades_out_then_ends_and_records_the_session(rig, fw, stim, mocker):
    history = mocker.patch.object(fw.settings, "append_history")
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.running.return_value = True
    length_ms = u.session.length_s * 1000
    u.tick(length_ms)
    stim.fade_out.assert_called_once_with(fw.session.RAMP_DOWN_MS, length_ms)
    u.tick(length_ms + fw.session.RAMP_DOWN_MS)
    stim.stop_all.assert_called()
    rec = history.call_args.args[0]
    assert rec["end"] == "timer" and rec["max_step"] == [1, 1]


def test_a_session_every_channel_left_ends_with_the_reason(rig_logs, rig, fw, stim, mocker):
    mocker.patch.object(fw.settings, "append_history")
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    for c in stim.ch:
        c.step = 0
    stim.any_fault.side_effect = lambda code=None: code is None  # an electrode fault
    u.tick(60_000)
    assert u.state() == fw.session.IDLE
    assert rig_logs("session")[-1]["reason"] == "fault"


def test_a_failed_boost_is_a_fatal_fault_only_switching_off_leaves(rig, fw, stim, mocker):
    mocker.patch.object(fw.settings, "append_history")
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    stim.running.return_value = True
    stim.any_fault.side_effect = lambda code=None: code == fw.electrode.BOOST
    u.tick(100)
    assert u.state() == fw.session.FAULT
    stim.pause.assert_called()
    u.switch(200)
    assert u.state() == fw.session.OFF
    stim.stop_all.assert_called()


def test_switching_off_stops_the_output_and_unlocks(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    u.toggle_lock()
    u.switch(10)
    assert u.state() == fw.session.OFF and not u.locked
    stim.stop_all.assert_called_once_with()
    stim.clear_faults.assert_called_once_with()


def test_a_program_change_ends_the_session_and_is_saved(rig, fw, stim, mocker):
    save = mocker.patch.object(fw.settings, "save")
    mocker.patch.object(fw.settings, "append_history")
    u = make(rig, fw, stim)
    on(u)
    u.start(0)
    u.next_program(1000)
    second = fw.programs.PROGRAMS[1]["id"]
    stim.select_program.assert_called_once_with(second, 1000)
    assert u.state() == fw.session.IDLE and u.cfg["program"] == second
    save.assert_called_once_with(u.cfg)


def test_status_gives_every_field_the_protocol_names(rig, fw, stim):
    u = make(rig, fw, stim)
    on(u)
    st = u.status(0)
    assert st["state"] == "idle" and st["steps"] == [0, 0] and st["faults"] == ["ok", "ok"]
    assert set(st) == {
        "state", "program", "steps", "max_step", "faults", "channels", "locked", "host",
        "remaining_s", "battery", "keepalive_ms", "consent", "asking", "version", "commit",
    }  # fmt: skip
    assert (st["consent"], st["asking"], st["version"]) == (False, 0, "unknown")
