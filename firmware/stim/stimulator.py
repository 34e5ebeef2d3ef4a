"""Therapy output for all channels: program, intensity steps, electrode checks, soft start, EMS
envelope, boost.

The policy layer between the unit (stim.unit: the wearer's presses and the host's commands)
and the pulse engine. Its hardware is handed in: one stim.engine.Channel per output and the
boost supply (stim.hw.Boost); the time comes in as `now` (time.ticks_ms()) with every call.

- intensity is a step 0..N per channel; every request is checked against the board's SR-3 caps
  for the current program and refused with a LimitError naming the limit, nothing changed;
- a channel that is off and asked for a step first passes an electrode check (SR-6): the boost
  must come up, then a few weak probe pulses classify the load; only an "ok" load starts;
- a channel starts (and restarts) from zero current and ramps up over RAMP_MS (SR-2); a decrease
  takes effect before the next pulse;
- while it runs, the pulse engine judges every pulse and trips the channel on an open, short
  or broken sense input; here the trip becomes intensity 0 (SR-1), a fault the LEDs show and
  a log line; a slow rise of the load over its session baseline (partial lift) first halves
  the intensity, then stops the channel;
- a trip at the compliance limit where the load the channel had been taking explains it is
  told apart from a lift by a probe at 1 mA: skin there means `limit`, and the channel
  restarts (electrode check, soft start) held at the highest step that load takes, further
  rises refused; an open there means `open`, as for any lift;
- changing program stops every channel and sets its intensity to 0 (SR-1);
- the boost supply is on only while a channel is checking or delivering output.
"""

import time

from micropython import const

from stim import electrode, limits, log, modulation, programs

RAMP_MS = 2000  # SR-2: every start ramps up from zero over this
_BOOST_SETTLE_MS = const(20)
_PROBE_TIMEOUT_MS = const(1000)
_LOAD_LOG_MS = const(10_000)  # trend: the measured load of each running channel
# A SENSE reading stands for the time since the one before it, up to one period at the slowest
# rate (pulse.RATE_MIN_HZ): longer gaps (a soft start, a level change) count as this.
_READING_MAX_MS = const(1000)
# The current source at its compliance limit (SR-6, `limit`). The engine stops the channel on
# any reading at the compliance limit, within one pulse, whatever caused it. That is a limit
# (the source cannot push the set current into a real skin load), not an open electrode, only
# when the load the channel had been taking below the limit (the partial-lift watch's smoothed
# load) is a plausible skin load, under _LIMIT_OHM, and at the tripping current needs at least
# _LIMIT_NEAR_X8 / 8 of the limit voltage: the current rose into the limit, or the skin crept up
# to it. A load that jumps to the limit from well below it at the same current is an open.
# Even then a lifted electrode reads the same, so a probe at 1 mA decides before anything more
# is driven: an open there is `open`; skin there is `limit`, and the channel restarts (soft
# start) at the highest step whose current into the probe's load needs at most _LIMIT_HOLD_X8 /
# 8 of the limit voltage.
_LIMIT_OHM = const(12_000)
_LIMIT_NEAR_X8 = const(6)
_LIMIT_HOLD_X8 = const(7)
_LIMIT_WAIT_MS = const(50)  # the peak-hold decays from the compliance voltage before the probe

# What a channel's output is doing (ChannelState.state).
STOPPED = 0
_CHECKING = const(1)  # boost settling, then probe pulses
DELIVERING = 2

# How a delivering channel's level moves (ChannelState.level_phase): _MOVING is worked out every
# tick (soft start, fade, an EMS ramp); _STEADY never changes until the step does; _PLATEAU and
# _REST are the flat parts of an EMS work/rest cycle, where the level stands while the phase lasts.
# The level is worked out in integers (microamps, factors in 1/4096): no tick allocates.
_MOVING = const(0)
_STEADY = const(1)
_PLATEAU = const(2)
_REST = const(3)


class ChannelState:
    """What the stimulator knows of one channel, in one preallocated object (the control loop
    updates it in place, allocating nothing)."""

    def __init__(self, now):
        self.step = 0
        self.state = STOPPED
        self.fault = electrode.OK  # the last electrode fault, shown until the next start
        self.held = 0  # fault LIMIT: the step the channel is held at (re-checking: it reached)
        self.lift = electrode.LiftWatch()
        self.paused_step = 0  # the step a pause saved, for resume()
        self.t_start = now  # the soft start's beginning (ticks_ms)
        self.t_check = now  # the electrode check's present stage began
        self.idle_c = 0  # SENSE before the first probe pulse
        self.n_seen = 0  # the engine's sense_n last looked at
        self.t_seen = now  # ... and when (ticks_ms)
        self.level_phase = _MOVING
        self.t_load_log = now


class Stimulator:
    def __init__(self, board, channels, boost, program_id, now):
        self.board = board
        self.channels = channels
        self.ch = [ChannelState(now) for _ in channels]
        self._step_ua = int(board["intensity"]["step_ma"] * 1000 + 0.5)
        self._boost = boost
        self._t_boost = now
        self._fade_ms = 0  # > 0 while every channel fades out (session end, battery cut-off)
        self._t_fade = now
        self._t_program = now  # where the EMS cycle began: set again when output starts
        self.program = None
        self.select_program(program_id or programs.PROGRAMS[0]["id"], now)

    # -- program ------------------------------------------------------------------------
    def select_program(self, pid, now):
        p, plan = programs.prepare(programs.by_id(pid), self.board["limits"]["max_session_min"])
        self.stop_all()
        self.program = p
        self._plan = plan
        self._cycle_ms = modulation.cycle_ms(p)
        log.info("program", id=p["id"], max_step=self.max_step())

    def max_step(self):
        """The highest step the program allows on this board (SR-3: stim.limits)."""
        return limits.max_step(self.board, self.program)

    # -- intensity ----------------------------------------------------------------------
    def set_step(self, ch, step, now):
        """Set channel ch (0-based) to an intensity step; raises LimitError if over a cap.

        From 0, the channel is checked first and starts once its electrodes pass."""
        limits.check(self.board, self.program, step)
        c = self.ch[ch]
        if step > c.held and c.fault == electrode.LIMIT:
            raise limits.LimitError(
                "limit", "the load takes no more than step %d (compliance)" % c.held
            )
        old = c.step
        if step == old:
            return
        c.step = step
        c.level_phase = _MOVING
        log.info("intensity", ch=ch + 1, step=step, ma=limits.step_ma(self.board, step))
        if step == 0:
            self._stop_channel(ch, "intensity")
        elif c.state == STOPPED:
            c.paused_step = 0
            self._begin_check(ch, now)
        elif c.state == DELIVERING and step < old:
            # SR-2: decreases take effect at once (before the next pulse)
            self.channels[ch].set_level_ua(self._level_ua(ch, now))

    def _stop_channel(self, ch, why):
        c = self.ch[ch]
        was = c.state
        self.channels[ch].stop()
        c.step = 0
        c.state = STOPPED
        c.held = 0
        if c.fault == electrode.LIMIT:
            c.fault = electrode.OK  # a limit holds only while the channel runs
        if was != STOPPED:
            log.info("stop", ch=ch + 1, reason=why)
        if not self.running():
            self._boost.off()

    def stop_all(self):
        """Every channel to zero at its next pulse boundary (<= one pulse), boost off."""
        self._fade_ms = 0
        for i in range(len(self.channels)):
            if self.ch[i].state != STOPPED or self.channels[i].running:
                self._stop_channel(i, "stop")
            self.ch[i].step = 0
        self._boost.off()

    def halt(self):
        """From the POWER button's hard interrupt (SR-7): every channel stops pulsing now
        (Channel.halt; no allocation). The unit then pauses the session as for any press."""
        for i in range(len(self.channels)):
            self.channels[i].halt()

    def hold_all(self):
        """Every channel held at its next pulse boundary, and nothing else (no log line, no
        bookkeeping): the way out on Ctrl-C, so that stim.main's all_off() finds no pulse to cut
        (SR-4) and re-claims the pins within a pulse (SR-8)."""
        for i in range(len(self.channels)):
            self.channels[i].hold()

    def pause(self):
        """Output to zero at once (SR-7), remembering each channel's step for resume()."""
        for c in self.ch:
            if c.step:
                c.paused_step = c.step
        self._fade_ms = 0
        self.stop_all()

    def resume(self, now):
        """Every paused channel checks its electrodes again and ramps up from zero (SR-2)."""
        for i in range(len(self.ch)):
            c = self.ch[i]
            step = c.paused_step
            c.paused_step = 0
            if step and c.state == STOPPED:
                c.step = step
                log.info("intensity", ch=i + 1, step=step, ma=limits.step_ma(self.board, step))
                self._begin_check(i, now)

    def forget_pause(self):
        for c in self.ch:
            c.paused_step = 0

    def fade_out(self, ms, now):
        """Ramp every channel down to zero over ms, then stop them all."""
        self._fade_ms = ms
        self._t_fade = now
        for c in self.ch:
            c.level_phase = _MOVING

    def fading(self):
        return self._fade_ms > 0

    def clear_faults(self):
        for c in self.ch:
            c.fault = electrode.OK

    def output_possible(self):
        """True while any output can run: a channel checking or delivering, a state machine
        still armed, or the boost up. Flash is written only when this is false (SR-14)."""
        if self._boost.is_on():
            return True
        for i in range(len(self.channels)):
            if self.ch[i].state != STOPPED or self.channels[i].running:
                return True
        return False

    def steady(self):
        """True when no level can move and no check is under way: every running channel past
        its soft start at a standing level, no envelope, no fade, no trip to follow up. The
        control cycle can then run at its slow rate."""
        if self._fade_ms or self._cycle_ms is not None:
            return False
        i = 0
        for c in self.ch:  # no range(len()): it runs every 10 ms
            if c.state != STOPPED and (
                c.state != DELIVERING or c.level_phase != _STEADY or self.channels[i].trip
            ):
                return False
            i += 1
        return True

    def running(self):
        """True while any channel is checking or delivering output."""
        for c in self.ch:
            if c.state != STOPPED:
                return True
        return False

    def any_step(self):
        for c in self.ch:
            if c.step:
                return True
        return False

    def any_fault(self, code=None):
        """True if a channel shows a fault (code None), or that fault."""
        for c in self.ch:
            if c.fault and (code is None or c.fault == code):
                return True
        return False

    def _boost_failed(self, ch):
        """Measure the boost; if it is not up, fail channel ch (fault `boost`) and say so."""
        boost_v = self._boost.volts()
        if boost_v < electrode.BOOST_OK_FRACTION * self._boost.nominal_v:
            self._fail(ch, electrode.BOOST, None, boost_v=round(boost_v, 1))
            return None
        return boost_v

    def _boost_on(self, now):
        if not self._boost.is_on():
            self._boost.on()
            self._t_boost = now

    def _level_ua(self, ch, now):
        """The current channel ch should push now, in microamps: its step, times the soft
        start (SR-2), the EMS envelope and a fade. Integers only: every tick of a ramp works
        this out without allocating (products stay small ints: <= 60 mA * 4096)."""
        c = self.ch[ch]
        ua = c.step * self._step_ua
        t = time.ticks_diff(now, c.t_start)
        if t < RAMP_MS:
            ua = ua * (t if t > 0 else 0) // RAMP_MS
        cyc = self._cycle_ms
        if cyc is not None:
            ua = ua * modulation.envelope_q12(cyc, time.ticks_diff(now, self._t_program)) >> 12
        if self._fade_ms:
            left = self._fade_ms - time.ticks_diff(now, self._t_fade)
            ua = ua * (left if left > 0 else 0) // self._fade_ms
        return ua

    # -- electrode check (SR-6) ---------------------------------------------------------
    def _begin_check(self, ch, now):
        if not self.running():
            # Output starts from nothing (a PLUS from 0, a resume): the EMS work/rest cycle
            # starts over with its work phase, so the wearer feels the contraction's ramp begin
            # at once, not after up to 10 s of rest. A second channel joins the running cycle
            # (both sides contract together); a limit's re-check keeps it.
            self._t_program = now
        c = self.ch[ch]
        c.fault = electrode.OK
        c.state = _CHECKING
        c.t_check = now
        self._boost_on(now)

    def _advance_check(self, ch, now):
        chan = self.channels[ch]
        c = self.ch[ch]
        if not chan.running:  # boost settling; the probe starts the channel
            if time.ticks_diff(now, self._t_boost) < _BOOST_SETTLE_MS:
                return
            if c.fault == electrode.LIMIT and time.ticks_diff(now, c.t_check) < _LIMIT_WAIT_MS:
                return  # the peak-hold still holds the compliance voltage: an idle reading
            boost_v = self._boost_failed(ch)
            if boost_v is None:
                return
            chan.boost_v = boost_v
            idle = chan.read_sense()
            if idle > chan.scale.counts(electrode.IDLE_MAX_FRACTION * boost_v):
                # No pulse for a while, yet the peak-hold reads high: the input is stuck.
                self._fail(ch, electrode.SENSE, None)
                return
            c.idle_c = idle
            chan.start(electrode.PROBE_PLAN, electrode.PROBE_UA)
            c.t_check = now
            return
        if chan.sense_n < electrode.PROBE_PULSES:
            if time.ticks_diff(now, c.t_check) > _PROBE_TIMEOUT_MS:
                self._fail(ch, electrode.SENSE, None)  # no pulse-done interrupts: engine fault
            return
        ma = chan.delivered_ma()
        code, ohm = electrode.probe_verdict(
            chan.scale, c.idle_c, chan.sense_ring, ma, chan.boost_v
        )
        chan.stop()
        if code != electrode.OK:
            self._fail(ch, code, ohm)
            return
        log.info("check", ch=ch + 1, result="ok", ohm=int(ohm))
        if c.fault == electrode.LIMIT:
            # Skin, not an open: hold the channel below the step that reached the limit.
            held = int(
                _LIMIT_HOLD_X8
                * electrode.COMPLIANCE_FRACTION
                * chan.boost_v
                * 1e6
                / (8 * ohm * self._step_ua)
            )
            if held >= c.held:
                held = c.held - 1
            if held < 1:
                self._fail(ch, electrode.LIMIT, ohm)  # not even step 1: stop
                return
            c.held = held
            if c.step > held:
                c.step = held
            log.warn("electrode", ch=ch + 1, fault=electrode.NAMES[electrode.LIMIT], ohm=int(ohm),
                     step=c.step)  # fmt: skip
            # The partial-lift watch goes on as it was (SR-6): the session's baseline (a load
            # that rose 3x is a lift), and a lift warning with the time it has lasted, so a pad
            # half off stops the channel 5 s after the reduction however often it reaches the
            # limit meanwhile.
        else:
            c.lift.reset(ohm)
        c.state = DELIVERING
        c.level_phase = _MOVING
        c.t_start = now
        c.t_load_log = now
        c.n_seen = 0
        c.t_seen = now
        chan.start(self._plan, 0)  # SR-2: every start ramps up from zero
        log.info("start", ch=ch + 1, program=self.program["id"])

    def _fail(self, ch, code, ohm, **extra):
        """A channel's electrodes failed: output off, intensity 0 (SR-1), fault shown."""
        c = self.ch[ch]
        step = c.step
        self._stop_channel(ch, electrode.NAMES[code])
        c.fault = code
        log.warn(
            "electrode",
            ch=ch + 1,
            fault=electrode.NAMES[code],
            ohm=None if ohm is None else int(ohm),
            step=step,
            **extra,
        )

    def _on_trip(self, ch, now):
        chan = self.channels[ch]
        c = self.ch[ch]
        code = chan.trip
        ohm = electrode.load_ohm(chan.scale, chan.sense_last, chan.delivered_ma())
        if code == electrode.SHORT:
            # Everything reads like a short when the boost has collapsed: say which it is.
            if self._boost_failed(ch) is None:
                return
        elif code == electrode.OPEN:
            sat_v = electrode.COMPLIANCE_FRACTION * chan.boost_v
            was = c.lift.smooth_ohm
            if (
                chan.sense_last >= chan.scale.counts(sat_v)
                and 0 < was < _LIMIT_OHM
                and was * chan.delivered * 8 >= _LIMIT_NEAR_X8 * sat_v * 1e6
            ):
                # At the compliance limit, and the load it had been taking explains it: the
                # source's limit, or an electrode lifted just then. Nothing more is driven until
                # a probe tells which (SR-6); the output stopped at the trip.
                step = c.step
                chan.stop()
                self._begin_check(ch, now)
                c.fault = electrode.LIMIT
                c.held = step
                return
        self._fail(ch, code, ohm)

    # -- running ------------------------------------------------------------------------
    def _watch(self, ch, now):
        """Partial-lift watch and load trend from the engine's latest reading (integers)."""
        chan = self.channels[ch]
        c = self.ch[ch]
        if chan.sense_n == c.n_seen or chan.sense_n <= chan.level_n or not chan.ohm_q12:
            return  # nothing new, nothing yet at the present LEVEL, or too weak to judge
        c.n_seen = chan.sense_n
        # SR-6: the watch's smoothing and its LIFT_STOP_MS run in real time at every rate. At
        # 100 Hz a new reading comes every control cycle; at 2 Hz, or in bursts twice a second,
        # one stands for the half second since the one before, not for one cycle.
        gap_ms = time.ticks_diff(now, c.t_seen)
        c.t_seen = now
        if gap_ms > _READING_MAX_MS:
            gap_ms = _READING_MAX_MS
        watch = c.lift
        action = watch.update((chan.sense_last * chan.ohm_q12) >> 12, gap_ms)
        if action == "reduce":
            step = c.step // 2 if c.step > 1 else 1
            log.warn(
                "electrode_lift",
                ch=ch + 1,
                action="reduce",
                ohm=watch.smooth_ohm,
                baseline=watch.baseline_ohm,
                step=step,
            )
            c.step = step
            c.level_phase = _MOVING  # tick() sets the lower level right after this
        elif action == "clear":
            log.info("electrode_lift", ch=ch + 1, action="clear", ohm=watch.smooth_ohm)
        elif action == "stop":
            self._fail(ch, electrode.LIFT, watch.smooth_ohm, baseline=watch.baseline_ohm)
            return
        if time.ticks_diff(now, c.t_load_log) >= _LOAD_LOG_MS:
            c.t_load_log = now
            log.info("load", ch=ch + 1, ohm=watch.smooth_ohm)

    def tick(self, now):
        """One control cycle: trips, checks, amplitude (soft start, envelope), lift watch.
        A channel whose level stands (soft start over, no fade, and no envelope or a flat
        phase of one) costs integer work only, so the steady loop allocates nothing on the
        device."""
        if self._fade_ms and time.ticks_diff(now, self._t_fade) >= self._fade_ms:
            self._fade_ms = 0
            self.stop_all()
            return
        for i in range(len(self.channels)):
            c = self.ch[i]
            st = c.state
            if st == STOPPED:
                continue
            if self.channels[i].trip:
                self._on_trip(i, now)
            elif st == _CHECKING:
                self._advance_check(i, now)
            else:
                self._watch(i, now)
                if c.state == DELIVERING and c.level_phase != _STEADY:
                    self._update_level(i, now)

    def _flat(self, i, now):
        """_STEADY, _PLATEAU or _REST when channel i's level cannot move this tick, else _MOVING.
        Integer work only: it runs every tick of an EMS session."""
        if self._fade_ms or time.ticks_diff(now, self.ch[i].t_start) < RAMP_MS:
            return _MOVING  # the soft start (SR-2) or a fade is under way
        c = self._cycle_ms
        if c is None:
            return _STEADY
        x = time.ticks_diff(now, self._t_program) % c[0]
        if x >= c[1]:
            return _REST
        if c[2] <= x <= c[3]:
            return _PLATEAU
        return _MOVING

    def _update_level(self, i, now):
        c = self.ch[i]
        flat = self._flat(i, now)
        if flat != _MOVING and flat == c.level_phase:
            return  # the same flat phase at the same step: the level set when it began stands
        self.channels[i].set_level_ua(self._level_ua(i, now))
        c.level_phase = flat
