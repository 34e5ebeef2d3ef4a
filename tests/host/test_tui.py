"""The terminal simulator (`stimctl sim`) without a terminal: keys in, virtual time, and the
screen as text. What it shows about the output must come from the simulated hardware."""

from __future__ import annotations

import pytest
from rich.console import Console

from host_tools.sim.board_model import OPEN_OHM, SHORT_OHM
from host_tools.tui import (
    BUTTON_KEYS,
    HELP,
    KEY_LABELS,
    SKINS_OHM,
    SimApp,
    split_keys,
)

pytestmark = pytest.mark.req("FR-20")


@pytest.fixture
def app():
    a = SimApp("pico")
    a.run_sim(1.0)  # the firmware boots (about 0.75 s) before a key does anything
    yield a
    a.close()


def screen(app: SimApp, width: int = 120, height: int = 40) -> str:
    return "\n".join(line.plain for line in app.render_lines(width, height))


def switch_on_and_start(app: SimApp) -> None:
    app.handle_key("P")
    app.run_sim(2.2)
    assert app.view.state == "idle"
    app.handle_key("+")
    app.run_sim(1.0)


def test_button_keys_press_the_pins_for_their_hold_time(app):
    buttons = app.board["buttons"]
    pin_to_name = {pin: name for name, pin in buttons.items()}
    edges: list[tuple[str, int, float]] = []

    def watch(pin, level, t):
        if pin in pin_to_name:
            edges.append((pin_to_name[pin], level, t / app.chip.sysclk_hz))

    app.chip.pin_observers.append(watch)
    for key, (names, hold_s) in BUTTON_KEYS.items():
        edges.clear()
        t0 = app.chip.t_s
        app.handle_key(key)
        app.run_sim(hold_s + 0.3)
        downs = {n: t for n, lvl, t in edges if lvl == 0}
        ups = {n: t for n, lvl, t in edges if lvl == 1}
        assert set(downs) == set(names), key
        for n in names:
            assert downs[n] == pytest.approx(t0, abs=1e-6), key
            assert ups[n] - downs[n] == pytest.approx(hold_s, abs=1e-6), key
        assert all(app.chip.level(p) == 1 for p in buttons.values())
        app.run_sim(2.5)  # let any gesture finish before the next key


def test_a_key_for_a_button_still_held_is_refused(app):
    app.handle_key("U")
    app.run_sim(0.5)
    assert app.button_down("plus")
    app.handle_key("+")
    assert "still held" in app.message.plain
    app.run_sim(1.6)
    assert not app.button_down("plus")


def test_scope_shows_biphasic_pulses_while_running_and_is_flat_when_stopped(app):
    assert screen(app).count("┼") == 0
    switch_on_and_start(app)
    app.run_sim(1.0)
    for ch in (1, 2):
        pos, neg = app.scope(ch, 80)
        assert sum(1 for v in pos if v > 0) >= 10  # 100 Hz over the auto 0.2 s
        assert sum(1 for v in neg if v > 0) >= 10
        zpos, zneg = app.zoom(ch, 32)
        first_a = next(i for i, v in enumerate(zpos) if v > 0)
        first_b = next(i for i, v in enumerate(zneg) if v > 0)
        assert first_a < first_b  # phase A, then phase B
    text = screen(app)
    assert "100 Hz" in text and "100 µs phase" in text
    assert text.count("┼") >= 20
    app.handle_key("p")  # POWER: pause, output stops at once
    app.run_sim(1.5)
    assert app.view.state == "paused"
    for ch in (1, 2):
        assert not app.measure(ch).active
        pos, neg = app.scope(ch, 80)
        assert not any(pos) and not any(neg)
    text = screen(app)
    assert text.count("┼") == 0
    heads = [ln for ln in text.splitlines() if ln.startswith(" CH")]
    assert len(heads) == 2 and all("no output" in h for h in heads)


def test_measurements_come_from_the_board_model(app):
    switch_on_and_start(app)
    for _ in range(5):
        app.handle_key("+")
        app.run_sim(0.5)
    app.run_sim(2.5)  # past the soft start
    m = app.measure(1)
    delivered = [p for p in app.pulses[0] if p.t_a > app.chip.t_s - 0.2]
    assert m.active
    assert m.rate_hz == pytest.approx(100, rel=0.02)
    assert m.width_us == pytest.approx(100, abs=2)
    assert m.peak_ma == pytest.approx(max(delivered[-1].peak_a_ma, delivered[-1].peak_b_ma))
    # the firmware says step 6 (9 mA); the load takes what the source pushes into 1 kΩ
    assert app.view.steps == [6, 6]
    assert 8.0 < m.peak_ma < 9.5
    # the same channel with the load taken away: current 0 at the pins, whatever the firmware
    app.model.set_load(1, 20_000.0)  # 80 V compliance: at most 4 mA
    app.run_sim(0.02)
    assert app.measure(1).peak_ma == pytest.approx(4.0, abs=0.1)


def test_burst_program_is_recognised(app):
    app.handle_key("P")
    app.run_sim(2.2)
    app.handle_key("m")
    app.run_sim(0.5)
    app.handle_key("m")
    app.run_sim(0.5)
    assert app.view.program == "tens_burst"
    app.handle_key("+")
    app.run_sim(3.0)
    m = app.measure(1)
    assert m.burst is not None
    assert m.burst[0] == 7 and m.burst[1] == pytest.approx(2, rel=0.05)
    assert m.rate_hz == pytest.approx(100, rel=0.05)
    assert "TENS burst" in screen(app)
    assert "in bursts of 7" in screen(app)


def test_lifting_an_electrode_shows_the_fault_and_restoring_clears_it_after_plus(app):
    switch_on_and_start(app)
    app.run_sim(0.5)
    app.handle_key("1")
    assert app.model.channels[0].load_ohm == OPEN_OHM
    app.run_sim(1.5)
    text = screen(app)
    assert "electrode LIFTED" in text
    assert "FAULT OPEN" in text
    assert app.view.faults == ["open", None]
    assert not app.measure(1).active and app.measure(2).active
    assert "blinks 4.2/s" in app._led_words(app._ch_hist[0])  # the open-electrode blink
    app.handle_key("1")  # back on the skin
    assert app.model.channels[0].load_ohm == SKINS_OHM[app.skin_i]
    app.run_sim(0.5)
    assert "FAULT OPEN" in screen(app)  # nothing restarts by itself
    app.handle_key("+")
    app.run_sim(1.0)
    assert "FAULT" not in screen(app)
    assert app.measure(1).active


def test_a_long_steady_channel_led_that_starts_blinking_is_described_as_blinking(app):
    switch_on_and_start(app)
    app.run_sim(5.0)  # longer than the LED window: the LED has been steady throughout
    assert app._led_words(app._ch_hist[0]) == "steady"
    app.handle_key("1")
    app.run_sim(1.0)
    assert "blinks 4.2/s" in app._led_words(app._ch_hist[0])


def test_shorting_an_electrode(app):
    switch_on_and_start(app)
    app.run_sim(0.5)
    app.handle_key("4")
    assert app.model.channels[1].load_ohm == SHORT_OHM
    app.run_sim(1.0)
    assert app.view.faults == [None, "short"]
    assert "electrode SHORTED" in screen(app)


def test_skin_impedance_cycles(app):
    seen = []
    for _ in SKINS_OHM:
        app.handle_key("z")
        seen.append(app.model.channels[0].load_ohm)
        assert app.model.channels[1].load_ohm == seen[-1]
    assert sorted(seen) == sorted(SKINS_OHM)


def test_battery_drain_reaches_the_firmware(app):
    app.handle_key("P")
    app.run_sim(2.0)
    for _ in range(5):
        app.handle_key("b")
    assert app.model.battery_v == pytest.approx(3.4)
    app.run_sim(6.0)
    assert app.view.battery == "low"
    for _ in range(2):
        app.handle_key("b")
    app.run_sim(6.0)
    assert app.view.battery == "cutoff"
    assert "Battery empty" in screen(app)
    for _ in range(8):
        app.handle_key("B")
    assert app.model.battery_v == pytest.approx(4.0)


def test_speed_and_pause(app):
    t0 = app.chip.t_s
    app.step(0.1)
    assert app.chip.t_s - t0 == pytest.approx(0.1)
    app.handle_key("]")
    t0 = app.chip.t_s
    app.step(0.1)
    assert app.chip.t_s - t0 == pytest.approx(0.2)
    app.handle_key("[")
    app.handle_key("[")
    t0 = app.chip.t_s
    app.step(0.1)
    assert app.chip.t_s - t0 == pytest.approx(0.05)
    app.handle_key(" ")
    t0 = app.chip.t_s
    app.step(0.1)
    assert app.chip.t_s == t0
    assert "PAUSED" in screen(app)
    app.handle_key(" ")
    app.step(0.1)
    assert app.chip.t_s > t0


def test_hold_plus_repeats(app):
    switch_on_and_start(app)
    app.run_sim(2.0)
    assert app.view.steps == [1, 1]
    app.handle_key("U")  # PLUS held 2 s: the press and 4 repeats
    app.run_sim(3.0)
    assert app.view.steps == [6, 6]
    assert 8.0 < app.measure(1).peak_ma < 9.5


def test_status_led_is_drawn_as_it_blinks(app):
    assert "dark" in app._led_words(app._status_hist)
    app.handle_key("P")
    app.run_sim(7.5)  # the 4 s window then holds two whole blinks, not one at its edge
    assert app._led_words(app._status_hist) == "green, blinks every 2 s"  # idle


def test_help_lists_every_bound_key(app):
    shown = set()
    for keys, _, _ in HELP:
        shown.update(keys.split())
    for k in app.bound_keys():
        assert KEY_LABELS.get(k, k) in shown, k
    labels = {KEY_LABELS.get(k, k) for k in app.bound_keys()}
    assert shown <= labels  # and no key in the help that does nothing
    for width in (60, 80, 120, 200):
        text = " ".join(line.plain for line in app.help_lines(width))
        for keys, _, _ in HELP:
            assert keys in text
    # on the screen, at the bottom
    lines = app.render_lines(120, 40)
    assert "q ^C quit" in lines[-1].plain


def test_startup_says_what_to_press_first(app):
    text = screen(app)
    assert "press P" in text
    app.handle_key("P")
    app.run_sim(2.5)
    assert "+ starts TENS conventional" in screen(app)


@pytest.mark.parametrize("size", [(120, 40), (80, 24), (60, 20), (40, 12)])
def test_screen_fits_the_terminal(app, size):
    width, height = size
    switch_on_and_start(app)
    lines = app.render_lines(width, height)
    assert len(lines) <= height
    console = Console(width=width, height=height, force_terminal=True, color_system=None)
    for line in lines:
        assert console.measure(line).maximum <= width
    with console.capture() as cap:
        console.print(app.render(width, height))
    assert len(cap.get().splitlines()) <= height
    if height >= 24:
        log_at = next(i for i, ln in enumerate(lines) if "firmware log" in ln.plain)
        help_at = next(i for i, ln in enumerate(lines) if ln.plain.startswith(" p P POWER"))
        assert "start ch=2" in lines[log_at + 1 : help_at][-1].plain  # the latest, readable


def test_split_keys():
    assert split_keys("p\x1b[A\x1b[Bq") == ["p", "UP", "DOWN", "q"]
    assert split_keys("\x1b[1;5C+") == ["+"]  # an unbound escape sequence is dropped


def select_program(app: SimApp, pid: str) -> None:
    app.handle_key("P")
    app.run_sim(2.2)
    for _ in range(8):
        if app.view.program == pid:
            break
        app.handle_key("m")
        app.run_sim(0.4)
    assert app.view.program == pid


def test_modulated_program_shows_its_width_sweep(app):
    select_program(app, "tens_modulated")
    app.handle_key("U")
    app.run_sim(4.0)
    widths = []
    for _ in range(25):
        app.run_sim(0.05)
        widths.append(app.measure(1).width_us)
    assert min(widths) < 215 and max(widths) > 315  # 200..330 µs every second
    assert app.measure(1).rate_hz == pytest.approx(80, rel=0.02)


def test_ems_work_rest_cycle_is_visible(app):
    select_program(app, "ems_strength")
    app.handle_key("U")
    app.run_sim(18.0)  # 5 s on, 10 s off, from the session's start
    assert app.span_s(1) == 20.0  # auto: the strip spans whole work/rest cycles
    pos, _ = app.scope(1, 80)
    on = [v > 0 for v in pos]
    assert any(on) and not all(on)
    assert any(a and not b for a, b in zip(on, on[1:], strict=False))  # an on -> off edge


def test_a_channel_stopped_by_a_fault_is_not_taken_for_a_rest(app):
    switch_on_and_start(app)
    app.run_sim(1.0)
    app.handle_key("2")
    app.run_sim(3.0)
    assert not app.resting(2)
    assert app.span_s(2) == 1.0


@pytest.mark.req("FR-20", "FR-26")
def test_the_feedback_line_shows_what_the_wearer_feels_or_hears(app):
    def pulses_ms():
        words = app.feedback_words()
        assert words.startswith("buzzer: ")  # the pico's feedback output
        if "ms" not in words:
            return []
        return [int(x) for x in words.split(": ")[1].split(" ms")[0].split()]

    assert "buzzer: quiet" in screen(app)  # nothing played yet
    app.handle_key("P")
    app.run_sim(2.5)
    assert pulses_ms() == [pytest.approx(500, abs=10)]  # switched on: one half-second pulse
    app.run_sim(5.0)
    app.handle_key("s")  # the status chord: program 1, both channels, step 0
    app.run_sim(3.0)
    assert pulses_ms() == [pytest.approx(x, abs=10) for x in (120, 600, 400)]
    assert app.feedback_words().endswith("(bottom (step 0))")  # the pattern named, last one
    app.handle_key("+")  # PLUS from idle: a session starts
    app.run_sim(1.5)
    assert app.feedback_words().endswith("(session start)")


@pytest.mark.req("SR-6")
def test_a_channel_held_at_the_compliance_limit_is_named_not_shown_as_a_fault(app):
    while app.model.channels[0].load_ohm != 5000.0:
        app.handle_key("z")  # 5 kΩ skin on both channels
    assert app.model.channels[0].load_ohm == 5000.0
    switch_on_and_start(app)
    for _ in range(12):  # past 14.4 mA, where 5 kΩ needs the 72 V limit
        app.handle_key("+")
        app.run_sim(0.3)
    app.run_sim(3.0)
    text = screen(app)
    assert app.view.faults == [None, None]
    assert app.view.held[0] == app.view.held[1] == 8
    assert "HELD at the compliance LIMIT" in text and "FAULT" not in text
    assert "step 8 of 40" in text
    assert app.measure(1).active and app.measure(1).peak_ma == pytest.approx(12.0, abs=0.2)
    assert app._led_words(app._ch_hist[0]) == "on, 2 dips every 1 s"
    app.handle_key("+")
    app.run_sim(0.3)
    assert "refused" in screen(app) and "limit" in screen(app)
    app.handle_key("1")  # lifted while held: an open electrode, the channel stops
    app.run_sim(1.0)
    assert app.view.faults[0] == "open" and app.view.held[0] is None
    assert "FAULT OPEN" in screen(app)


@pytest.mark.req("FR-20")
@pytest.mark.parametrize("key", ["1", "3"])
def test_what_to_do_after_an_electrode_fault_fits_80_columns(app, key):
    switch_on_and_start(app)
    app.run_sim(2.0)
    app.handle_key(key)  # channel 1 lifted (1) or shorted (3)
    app.run_sim(2.0)
    lines = [ln.plain for ln in app.render_lines(80, 24)]
    fault = next(ln for ln in lines if "FAULT" in ln)
    # the whole instruction is on the screen (the timebase note after it may be cut short)
    assert "restore the electrode (%s), then press +" % key in fault


def test_the_title_shows_the_cpu_busy_share_and_the_battery_drain(app):
    """From the simulated chip's cycle counts and the power model (host_tools/sim/power.py):
    switched off the chip sleeps (a few mA), running both channels it draws tens of mA."""
    import re

    def figures():
        title = screen(app).splitlines()[0]
        m = re.search(r"CPU ([\d.]+) %\s+([\d.]+) mA", title)
        assert m, title
        return float(m.group(1)), float(m.group(2))

    app.run_sim(3.0)
    busy_off, ma_off = figures()
    assert busy_off <= 2.0 and 0.5 < ma_off < 5.0
    switch_on_and_start(app)
    for _ in range(8):
        app.handle_key("+")
        app.run_sim(0.4)
    app.run_sim(4.0)
    busy_on, ma_on = figures()
    assert busy_on > busy_off and ma_on > 5 * ma_off
