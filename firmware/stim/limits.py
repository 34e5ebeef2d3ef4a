"""SR-3 hard caps: what a program at an intensity step would deliver, against the board's limits.

Pure arithmetic, so the same numbers are computed on the device (to refuse a request), in tests
and in the report. Worst case over the program: the widest phase and the highest pulse rate it
can reach, at full drive, into the reference load.

Quantities, for peak current I (A), phase width w (s), pulse rate f (Hz), load R (ohm):
  charge per phase      Q = I w
  rms current           I_rms = I sqrt(2 w f)          (two phases per pulse)
  rms current density   I_rms / A_electrode
  average power density I_rms^2 R / A_electrode
"""

import math

REFERENCE_LOAD_OHM = 500


class LimitError(ValueError):
    def __init__(self, key, msg):
        super().__init__("%s: %s" % (key, msg))
        self.key = key


def step_ma(board, step):
    """Peak current asked for at an intensity step (0..steps)."""
    return step * board["intensity"]["step_ma"]


def worst_case(program):
    """(phase_us, rate_hz, duty_factor) the program can reach at worst.

    duty_factor scales the average pulse rate: a burst delivers N pulses per burst period, not
    rate_hz continuously, but its per-phase charge and peak are those of its pulses.
    """
    phase = program["phase_us"]
    rate = program["rate_hz"]
    avg_rate = rate
    sw = program.get("sweep")
    if sw:
        if sw["param"] == "phase_us":
            phase = max(phase, sw["max"])
        else:
            rate = max(rate, sw["max"])
            avg_rate = rate
    b = program.get("burst")
    if b:
        avg_rate = b["pulses"] * b["rate_hz"]
    return phase, rate, avg_rate


def figures(board, program, peak_ma, load_ohm=REFERENCE_LOAD_OHM):
    """The SR-3 quantities for a program at a peak current, as a dict."""
    phase_us, _rate, avg_rate = worst_case(program)
    compliance_ma = board["analog"]["compliance_v"] / load_ohm * 1000
    i_ma = min(peak_ma, compliance_ma)
    w_s = phase_us / 1e6
    area = board["limits"]["min_electrode_area_cm2"]
    i_rms_ma = i_ma * math.sqrt(2 * w_s * avg_rate)
    return {
        "peak_ma": i_ma,
        "charge_per_phase_uc": i_ma * w_s * 1000,
        "rms_ma": i_rms_ma,
        "rms_ma_per_cm2": i_rms_ma / area,
        "power_w_per_cm2": (i_rms_ma / 1000) ** 2 * load_ohm / area,
    }


def check(board, program, step):
    """Raise LimitError naming the limit if the program at this step would exceed a cap."""
    lim = board["limits"]
    if isinstance(step, bool) or not isinstance(step, int):
        raise LimitError("step", "must be a whole number, got %r" % (step,))
    if step < 0 or step > board["intensity"]["steps"]:
        raise LimitError("step", "%d outside 0..%d" % (step, board["intensity"]["steps"]))
    peak = step_ma(board, step)
    # Judge at the peak current asked for, whatever the load: the cap must hold into any skin.
    f = figures(board, program, peak, load_ohm=1)
    f500 = figures(board, program, peak)
    if peak > lim["max_peak_ma"]:
        raise LimitError(
            "max_peak_ma", "%.1f mA above the %.1f mA cap" % (peak, lim["max_peak_ma"])
        )
    if f["charge_per_phase_uc"] > lim["max_charge_per_phase_uc"]:
        raise LimitError(
            "max_charge_per_phase_uc",
            "%.2f uC per phase above the %.2f uC cap"
            % (f["charge_per_phase_uc"], lim["max_charge_per_phase_uc"]),
        )
    if f["rms_ma_per_cm2"] > lim["max_rms_ma_per_cm2"]:
        raise LimitError(
            "max_rms_ma_per_cm2",
            "%.3f mA/cm2 rms above the %.3f cap"
            % (f["rms_ma_per_cm2"], lim["max_rms_ma_per_cm2"]),
        )
    if f500["power_w_per_cm2"] > lim["max_power_w_per_cm2"]:
        raise LimitError(
            "max_power_w_per_cm2",
            "%.4f W/cm2 above the %.4f cap"
            % (f500["power_w_per_cm2"], lim["max_power_w_per_cm2"]),
        )
    return f500


def max_step(board, program):
    """Highest step the program may reach on this board (0 if even step 1 is over a cap)."""
    best = 0
    for s in range(1, board["intensity"]["steps"] + 1):
        try:
            check(board, program, s)
        except LimitError:
            break
        best = s
    return best
