"""Therapy output for all channels: program, intensity steps, electrode checks, soft start, EMS
envelope, boost.

The policy layer between the wearer interface (or a host command) and the pulse engine:
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
- changing program stops every channel and sets its intensity to 0 (SR-1);
- the boost supply is on only while a channel is checking or delivering output.
"""

import time

from machine import ADC, Pin

from stim import electrode, limits, log, modulation, programs
from stim.engine import Channel

RAMP_MS = 2000  # SR-2: every start ramps up from zero over this
BOOST_SETTLE_MS = 20
PROBE_TIMEOUT_MS = 1000
LOAD_LOG_MS = 10_000  # trend: the measured load of each running channel

# How a running channel's level moves (Stimulator._level_phase): MOVING is worked out every
# tick (soft start, fade, an EMS ramp); STEADY never changes until the step does; PLATEAU and
# REST are the flat parts of an EMS work/rest cycle, where the level stands while the phase lasts.
# The level is worked out in integers (microamps, factors in 1/4096): no tick allocates.
MOVING = 0
STEADY = 1
PLATEAU = 2
REST = 3

# Channel states.
IDLE = 0
CHECK = 1  # boost settling, then probe pulses
RUN = 2
LIFT = 5  # a fault code beyond stim.electrode's: stopped for a partial lift
FAULT_NAMES = electrode.NAMES + ("lift",)


class Stimulator:
    def __init__(self, board, program_id=None):
        self.board = board
        sysclk = board["sysclk_hz"]
        self.channels = [Channel(i, c, board, sysclk) for i, c in enumerate(board["channels"])]
        n = len(self.channels)
        self.steps = [0] * n
        self._step_ua = int(board["intensity"]["step_ma"] * 1000 + 0.5)
        self.state = [IDLE] * n
        self.fault = [electrode.OK] * n  # the last electrode fault, shown until the next start
        self.lift = [electrode.LiftWatch() for _ in range(n)]
        t0 = time.ticks_ms()
        self._t_start = [t0] * n
        self._t_check = [t0] * n
        self._probing = [False] * n
        self._idle_c = [0] * n
        self._n_seen = [0] * n
        self._level_phase = [MOVING] * n  # MOVING, STEADY, PLATEAU or REST (above)
        self._t_load_log = [t0] * n
        an = board["analog"]
        self._boost = Pin(board["boost_en"], Pin.OUT, value=0)
        self._boost_adc = ADC(board["boost_adc"])
        self._boost_v_per_count = an["adc_vref_v"] * an["boost_divider"] / 65535
        self._boost_nominal_v = an["compliance_v"]
        self._t_boost = t0
        self._fade_ms = 0  # > 0 while every channel fades out (session end, battery cut-off)
        self._t_fade = t0
        self.paused_steps = [0] * n
        self._t_program = time.ticks_ms()
        self.program = None
        self.select_program(program_id or programs.PROGRAMS[0]["id"])

    # -- program ------------------------------------------------------------------------
    def select_program(self, pid):
        p = programs.validate(programs.by_id(pid), self.board["limits"]["max_session_min"])
        self.stop_all()
        self.program = p
        self._plan = modulation.plan(p)
        self._cycle_ms = modulation.cycle_ms(p)
        self.max_step = limits.max_step(self.board, p)
        self._t_program = time.ticks_ms()
        log.info("program", id=p["id"], max_step=self.max_step)

    # -- intensity ----------------------------------------------------------------------
    def set_step(self, ch, step):
        """Set channel ch (0-based) to an intensity step; raises LimitError if over a cap.

        From 0, the channel is checked first and starts once its electrodes pass."""
        limits.check(self.board, self.program, step)
        old = self.steps[ch]
        if step == old:
            return
        self.steps[ch] = step
        self._level_phase[ch] = MOVING
        log.info("intensity", ch=ch + 1, step=step, ma=limits.step_ma(self.board, step))
        if step == 0:
            self._stop_channel(ch, "intensity")
        elif self.state[ch] == IDLE:
            self.paused_steps[ch] = 0
            self._begin_check(ch)
        elif self.state[ch] == RUN and step < old:
            # SR-2: decreases take effect at once (before the next pulse)
            self.channels[ch].set_level_ua(self._level_ua(ch, time.ticks_ms()))

    def _stop_channel(self, ch, why):
        was = self.state[ch]
        self.channels[ch].stop()
        self.steps[ch] = 0
        self.state[ch] = IDLE
        self._probing[ch] = False
        if was != IDLE:
            log.info("stop", ch=ch + 1, reason=why)
        if not self.running():
            self._boost.value(0)

    def stop_all(self):
        """Every channel to zero at its next pulse boundary (<= one pulse), boost off."""
        self._fade_ms = 0
        for i in range(len(self.channels)):
            if self.state[i] != IDLE or self.channels[i].running:
                self._stop_channel(i, "stop")
            self.steps[i] = 0
        self._boost.value(0)

    def halt(self):
        """From the POWER button's hard interrupt (SR-7): every channel stops pulsing now
        (Channel.halt; no allocation). The app then pauses the session as for any press."""
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
        for i in range(len(self.channels)):
            if self.steps[i]:
                self.paused_steps[i] = self.steps[i]
        self._fade_ms = 0
        self.stop_all()

    def resume(self):
        """Every paused channel checks its electrodes again and ramps up from zero (SR-2)."""
        for i in range(len(self.channels)):
            step = self.paused_steps[i]
            self.paused_steps[i] = 0
            if step and self.state[i] == IDLE:
                self.steps[i] = step
                log.info("intensity", ch=i + 1, step=step, ma=limits.step_ma(self.board, step))
                self._begin_check(i)

    def forget_pause(self):
        for i in range(len(self.paused_steps)):
            self.paused_steps[i] = 0

    def fade_out(self, ms):
        """Ramp every channel down to zero over ms, then stop them all."""
        self._fade_ms = ms
        self._t_fade = time.ticks_ms()
        for i in range(len(self._level_phase)):
            self._level_phase[i] = MOVING

    def fading(self):
        return self._fade_ms > 0

    def clear_faults(self):
        for i in range(len(self.fault)):
            self.fault[i] = electrode.OK

    def output_possible(self):
        """True while any output can run: a channel checking or delivering, a state machine
        still armed, or the boost up. Flash is written only when this is false (SR-14)."""
        if self._boost.value():
            return True
        for i in range(len(self.channels)):
            if self.state[i] != IDLE or self.channels[i].running:
                return True
        return False

    def running(self):
        """True while any channel is checking or delivering output."""
        for st in self.state:
            if st != IDLE:
                return True
        return False

    def boost_v(self):
        return self._boost_adc.read_u16() * self._boost_v_per_count

    def _boost_failed(self, ch):
        """Measure the boost; if it is not up, fail channel ch (fault `boost`) and say so."""
        boost_v = self.boost_v()
        if boost_v < electrode.BOOST_OK_FRACTION * self._boost_nominal_v:
            self._fail(ch, electrode.BOOST, None, boost_v=round(boost_v, 1))
            return None
        return boost_v

    def _boost_on(self):
        if not self._boost.value():
            self._boost.value(1)
            self._t_boost = time.ticks_ms()

    def _level_ua(self, ch, now):
        """The current channel ch should push now, in microamps: its step, times the soft
        start (SR-2), the EMS envelope and a fade. Integers only: every tick of a ramp works
        this out without allocating (products stay small ints: <= 60 mA * 4096)."""
        ua = self.steps[ch] * self._step_ua
        t = time.ticks_diff(now, self._t_start[ch])
        if t < RAMP_MS:
            ua = ua * (t if t > 0 else 0) // RAMP_MS
        c = self._cycle_ms
        if c is not None:
            ua = ua * modulation.envelope_q12(c, time.ticks_diff(now, self._t_program)) >> 12
        if self._fade_ms:
            left = self._fade_ms - time.ticks_diff(now, self._t_fade)
            ua = ua * (left if left > 0 else 0) // self._fade_ms
        return ua

    # -- electrode check (SR-6) ---------------------------------------------------------
    def _begin_check(self, ch):
        self.fault[ch] = electrode.OK
        self.state[ch] = CHECK
        self._probing[ch] = False
        self._t_check[ch] = time.ticks_ms()
        self._boost_on()

    def _advance_check(self, ch, now):
        chan = self.channels[ch]
        if not self._probing[ch]:
            if time.ticks_diff(now, self._t_boost) < BOOST_SETTLE_MS:
                return
            boost_v = self._boost_failed(ch)
            if boost_v is None:
                return
            chan.boost_v = boost_v
            idle = chan.read_sense()
            if idle > chan.scale.counts(electrode.IDLE_MAX_FRACTION * boost_v):
                # No pulse for a while, yet the peak-hold reads high: the input is stuck.
                self._fail(ch, electrode.SENSE, None)
                return
            self._idle_c[ch] = idle
            chan.start(electrode.PROBE_PLAN, electrode.PROBE_UA)
            self._probing[ch] = True
            self._t_check[ch] = now
            return
        if chan.sense_n < electrode.PROBE_PULSES:
            if time.ticks_diff(now, self._t_check[ch]) > PROBE_TIMEOUT_MS:
                self._fail(ch, electrode.SENSE, None)  # no pulse-done interrupts: engine fault
            return
        ma = chan.delivered_ma()
        code, ohm = electrode.probe_verdict(
            chan.scale, self._idle_c[ch], chan.sense_ring, ma, chan.boost_v
        )
        chan.stop()
        self._probing[ch] = False
        if code != electrode.OK:
            self._fail(ch, code, ohm)
            return
        log.info("check", ch=ch + 1, result="ok", ohm=int(ohm))
        self.lift[ch].reset(ohm)
        self.state[ch] = RUN
        self._level_phase[ch] = MOVING
        self._t_start[ch] = now
        self._t_load_log[ch] = now
        self._n_seen[ch] = 0
        chan.start(self._plan, 0)  # SR-2: every start ramps up from zero
        log.info("start", ch=ch + 1, program=self.program["id"])

    def _fail(self, ch, code, ohm, **extra):
        """A channel's electrodes failed: output off, intensity 0 (SR-1), fault shown."""
        step = self.steps[ch]
        self.fault[ch] = code
        self._stop_channel(ch, FAULT_NAMES[code])
        log.warn(
            "electrode",
            ch=ch + 1,
            fault=FAULT_NAMES[code],
            ohm=None if ohm is None else int(ohm),
            step=step,
            **extra,
        )

    def _on_trip(self, ch):
        chan = self.channels[ch]
        code = chan.trip
        ohm = electrode.load_ohm(chan.scale, chan.sense_last, chan.delivered_ma())
        if code == electrode.SHORT:
            # Everything reads like a short when the boost has collapsed: say which it is.
            if self._boost_failed(ch) is None:
                return
        self._fail(ch, code, ohm)

    # -- running ------------------------------------------------------------------------
    def _watch(self, ch, now, dt_ms):
        """Partial-lift watch and load trend from the engine's latest reading (integers)."""
        chan = self.channels[ch]
        if chan.sense_n == self._n_seen[ch] or chan.sense_n <= chan.level_n or not chan.ohm_q12:
            return  # nothing new, nothing yet at the present LEVEL, or too weak to judge
        self._n_seen[ch] = chan.sense_n
        watch = self.lift[ch]
        action = watch.update((chan.sense_last * chan.ohm_q12) >> 12, dt_ms)
        if action == "reduce":
            step = self.steps[ch] // 2 if self.steps[ch] > 1 else 1
            log.warn(
                "electrode_lift",
                ch=ch + 1,
                action="reduce",
                ohm=watch.smooth_ohm,
                baseline=watch.baseline_ohm,
                step=step,
            )
            self.steps[ch] = step
            self._level_phase[ch] = MOVING
            chan.set_level_ua(self._level_ua(ch, now))
        elif action == "clear":
            log.info("electrode_lift", ch=ch + 1, action="clear", ohm=watch.smooth_ohm)
        elif action == "stop":
            self._fail(ch, LIFT, watch.smooth_ohm, baseline=watch.baseline_ohm)
            return
        if time.ticks_diff(now, self._t_load_log[ch]) >= LOAD_LOG_MS:
            self._t_load_log[ch] = now
            log.info("load", ch=ch + 1, ohm=watch.smooth_ohm)

    def tick(self, dt_ms):
        """One control cycle: trips, checks, amplitude (soft start, envelope), lift watch.
        A channel whose level stands (soft start over, no fade, and no envelope or a flat
        phase of one) costs integer work only, so the steady loop allocates nothing on the
        device."""
        now = time.ticks_ms()
        if self._fade_ms and time.ticks_diff(now, self._t_fade) >= self._fade_ms:
            self._fade_ms = 0
            self.stop_all()
            return
        for i in range(len(self.channels)):
            st = self.state[i]
            if st == IDLE:
                continue
            chan = self.channels[i]
            if chan.trip:
                self._on_trip(i)
            elif st == CHECK:
                self._advance_check(i, now)
            else:
                self._watch(i, now, dt_ms)
                if self.state[i] == RUN and self._level_phase[i] != STEADY:
                    self._update_level(i, now)

    def _flat(self, i, now):
        """STEADY, PLATEAU or REST when channel i's level cannot move this tick, else MOVING.
        Integer work only: it runs every tick of an EMS session."""
        if self._fade_ms or time.ticks_diff(now, self._t_start[i]) < RAMP_MS:
            return MOVING  # the soft start (SR-2) or a fade is under way
        c = self._cycle_ms
        if c is None:
            return STEADY
        x = time.ticks_diff(now, self._t_program) % c[0]
        if x >= c[1]:
            return REST
        if c[2] <= x <= c[3]:
            return PLATEAU
        return MOVING

    def _update_level(self, i, now):
        flat = self._flat(i, now)
        if flat != MOVING and flat == self._level_phase[i]:
            return  # the same flat phase at the same step: the level set when it began stands
        self.channels[i].set_level_ua(self._level_ua(i, now))
        self._level_phase[i] = flat
