"""The wearer's buttons: each gesture (stim.gestures) becomes a call on the unit (stim.unit).

The policy of the presses lives here: POWER down stops the output at once and its release
decides (a short press leaves the session paused, a long one switches off; SR-7); nothing but
POWER held works while the unit is off or in a fatal fault; the lock (PLUS and MINUS held
together) blocks every other press (the refused pattern plays), the status chord (MODE and
MINUS held together) only tells; MINUS while idle chooses the session length; each accepted
press is acknowledged on the status LED, and the unit plays its pattern (stim.feedback).
"""

import time

from micropython import const

from stim import gestures, log, session

# Feedback patterns played here (stim.feedback's events, same numbers: test_feedback.py).
_FB_REFUSED = const(19)

_ACK_MS = const(60)


class Wearer:
    def __init__(self, unit, gest):
        self.unit = unit
        self.gestures = gest
        self.ack_until = 0  # ticks_ms until which the status LED acknowledges a press
        self._paused_by_press = False
        self._halted = 0  # the POWER interrupt stopped the output; the next sample follows up
        self.on_power_irq = self._on_power_irq  # bound once: an interrupt must not allocate

    def _on_power_irq(self, pin):
        # SR-7: the press itself stops the output, whatever the control loop is doing at the
        # moment (a long electrode check, a log line, a collection): hard interrupt, no
        # allocation. The next sample then pauses the session as POWER_DOWN does.
        self.unit.stim.halt()
        self._halted = 1

    def sample(self, bits, dt_ms):
        """One sample of the buttons (bit n: gestures.BUTTONS[n] down) and what it completes."""
        g = self.gestures
        if self._halted:
            # The POWER interrupt saw a press (and stopped the output): the decoder counts it
            # as pressed even if no sample sees it, so the session pauses as for any press and
            # the release is a POWER_SHORT like any other (SR-7).
            self._halted = 0
            g.power_edge()
        ev = g.update(bits, dt_ms)
        while ev:
            self.on_gesture(ev, g.button, time.ticks_ms())
            ev = g.next_event()

    def quiet(self, bits):
        """True when a sample of `bits` would do nothing: no button down, none being decoded,
        and no press seen by the POWER interrupt still to follow up."""
        return not self._halted and self.gestures.idle(bits)

    def acknowledging(self, now):
        return time.ticks_diff(self.ack_until, now) > 0

    def on_gesture(self, ev, b, now):
        unit = self.unit
        st = unit.state()
        if ev == gestures.POWER_DOWN:
            # SR-7: output to zero on the first sample that sees POWER, in every state. The
            # release then decides: a short press leaves the session paused, a long one
            # switches the unit off. A POWER press also takes back any host's consent (SR-15).
            unit.end_consent("power")
            if unit.pause(now):
                self._paused_by_press = True
            return
        log.info("button", gesture=gestures.NAMES[ev], name=gestures.BUTTONS[b])
        unit.touch(now)
        if ev == gestures.STUCK:
            log.warn("button_stuck", name=gestures.BUTTONS[b], msg="ignored until released")
            return
        if ev == gestures.UNSTUCK:
            return
        if ev == gestures.POWER_LONG:
            unit.switch(now)
            return
        if st == session.OFF or st == session.FAULT:
            return  # off, or a fatal fault: only POWER held (off) does anything
        self.ack_until = time.ticks_add(now, _ACK_MS)
        if ev == gestures.POWER_SHORT:
            if self._paused_by_press:
                self._paused_by_press = False  # this press paused the session: it stays so
            elif st == session.PAUSED:
                if unit.locked:
                    log.info("locked", gesture="power_short")
                    return
                unit.resume(now)
            return
        if ev == gestures.LOCK:
            unit.toggle_lock()
            return
        if ev == gestures.STATUS:
            unit.play_status(now)  # tells, changes nothing: also while locked
            return
        if unit.asking and (ev == gestures.PLUS or ev == gestures.MINUS):
            # SR-15: a host asks; this press answers it and does nothing else. Never while
            # locked (the host is refused then): a press on a locked keypad cannot consent.
            unit.answer(ev == gestures.PLUS, "press")
            return
        if unit.locked:
            log.info("locked", gesture=gestures.NAMES[ev])
            unit.player.play(_FB_REFUSED)
            return
        if ev == gestures.MODE_SHORT:
            unit.next_program(now)
        elif ev == gestures.MODE_LONG:
            unit.next_channels()
        elif ev == gestures.PLUS:
            if st == session.IDLE:
                unit.start(now)
            else:
                unit.step_selected(1, now)
        elif ev == gestures.MINUS:
            if st == session.IDLE:
                unit.next_length()  # idle: MINUS chooses the session length
            else:
                unit.step_selected(-1, now)
