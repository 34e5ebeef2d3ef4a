"""Board definitions: the one validator for boards/*.json (firmware, host tools and tests).

A board file says which GPIO does what, plus the analog facts and safety limits of one hardware
design. Everything downstream trusts the dict returned here, so any doubt is an error (SR-3):
unknown keys, wrong types, NaN and out-of-range values are rejected, never clipped or guessed.
Every error names the dotted key path. boards/README.md documents each key.
Pure core: no `machine` import, runs unchanged on MicroPython and CPython.
"""

import json

_INF = float("inf")
_REQ = object()  # default marker: the key is required
_EPS = 1e-6  # tolerance for float sums written by hand in JSON (100 * 0.7 != 70.0)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
# Pin kinds for _pin: (lowest, highest, what, why). Pins that can put energy into the electrodes
# must be among those safe.all_off() drives low when the board file is unreadable (GPIO 0..22),
# or SR-8 would not cover them.
_ANY = (0, 29, "a GPIO number", "")
_ADC = (26, 29, "an ADC pin, GPIO", "")
_OUT = (0, 22, "an output GPIO", " (safe-off can only force GPIO 0..22 low without a board file)")

_TOP = (
    "name description hardware sysclk_hz channels buttons status_led boost_en boost_adc "
    "battery_adc analog intensity limits battery buzzer haptic console charge_detect"
).split()
_CHANNEL = ("phase_a", "phase_b", "level_pwm", "sense_adc", "led")
_BUTTONS = ("power", "mode", "plus", "minus")
_RGB = ("r", "g", "b")
_ANALOG = (
    "adc_vref_v level_pwm_hz level_full_scale_ma level_calibration sense_divider "
    "sense_hold_tau_ms compliance_v boost_divider boost_rise_ms battery_divider boost_efficiency"
).split()
_INTENSITY = ("steps", "step_ma")
_LIMITS = (
    "max_peak_ma max_charge_per_phase_uc min_electrode_area_cm2 max_rms_ma_per_cm2 "
    "max_power_w_per_cm2 max_session_min default_session_min"
).split()
_BATTERY = ("full_v", "warn_v", "cutoff_v", "hysteresis_v", "capacity_mah")


class BoardError(ValueError):
    """A board definition that must not be used. `key` is the dotted path of the first bad key."""

    def __init__(self, key, msg):
        super().__init__("%s: %s" % (key, msg))
        self.key = key
        self.msg = msg


def _what(v):
    # A value in the board file's own (JSON) vocabulary, short enough for one log line.
    if isinstance(v, (dict, list, tuple)):
        return "an object" if isinstance(v, dict) else "a list"
    r = json.dumps(v) if v is None or isinstance(v, (bool, str)) else repr(v)
    return ("string " if isinstance(v, str) else "") + (r if len(r) < 25 else r[:21] + "...")


def _get(d, path, key, default=_REQ):
    p = path + "." + key if path else key
    if key in d:
        return d[key], p
    if default is _REQ:
        raise BoardError(p, "required key is missing")
    return default, p


def _section(v, path, keys):
    if not isinstance(v, dict):
        raise BoardError(path or "<board>", "expected an object {...}, got %s" % _what(v))
    for k in sorted(v, key=str):
        if k not in keys:
            p = path + "." + str(k) if path else str(k)
            raise BoardError(p, "unknown key; allowed keys here: " + ", ".join(keys))
    return v


def _int(v, path, lo, hi, noun="an integer", note=""):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise BoardError(path, "expected %s %d..%d%s, got %s" % (noun, lo, hi, note, _what(v)))
    return v


def _num(v, path, lo, hi=_INF, lo_open=False, note=""):
    if lo_open:
        rng = "> %g" % lo if hi == _INF else "> %g and <= %g" % (lo, hi)
    else:
        rng = ">= %g" % lo if hi == _INF else "%g..%g" % (lo, hi)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BoardError(path, "expected a number %s%s, got %s" % (rng, note, _what(v)))
    try:
        f = float(v)
    except OverflowError:
        f = _INF
    if f != f or f in (_INF, -_INF):
        raise BoardError(path, "expected a finite number %s%s, got %s" % (rng, note, _what(v)))
    if f < lo or f > hi or (lo_open and f == lo):
        raise BoardError(path, "must be %s%s, got %s" % (rng, note, _what(v)))
    return f


def _field(out, d, path, key, lo, hi=_INF, lo_open=False, default=_REQ, note=""):
    # Integer bounds mean an integer field; float bounds a number (a JSON int is coerced).
    v, p = _get(d, path, key, default)
    if isinstance(lo, int):
        out[key] = _int(v, p, lo, hi, "an integer", note)
    else:
        out[key] = _num(v, p, lo, hi, lo_open, note)
    return out[key]


def _pin(used, out, d, path, key, kind=_ANY):
    v, p = _get(d, path, key)
    out[key] = v = _int(v, p, kind[0], kind[1], kind[2], kind[3])
    if v in used:
        raise BoardError(p, "GPIO %d is already used by %s; one pin, one job" % (v, used[v]))
    used[v] = p
    return v


def _list(v, path, lo, hi, what):
    if not isinstance(v, (list, tuple)) or not lo <= len(v) <= hi:
        n = "a list of %d" % len(v) if isinstance(v, (list, tuple)) else _what(v)
        raise BoardError(path, "expected a list of %d..%d %s, got %s" % (lo, hi, what, n))
    return v


def _calibration(v, path, fs):
    _list(v, path, 2, 32, "[duty, ma] points")
    pts = []
    for i, pt in enumerate(v):
        p = "%s[%d]" % (path, i)
        if not isinstance(pt, (list, tuple)) or len(pt) != 2:
            raise BoardError(p, "expected a [duty, ma] pair, got %s" % _what(pt))
        duty = _num(pt[0], p + "[0]", 0.0, 1.0)
        ma = _num(pt[1], p + "[1]", 0.0)
        if pts and (duty <= pts[-1][0] or ma <= pts[-1][1]):
            m = "duty and ma must both rise, got [%g, %g] after [%g, %g]"
            raise BoardError(p, m % (duty, ma, pts[-1][0], pts[-1][1]))
        pts.append([duty, ma])
    if pts[0][0] != 0.0:
        raise BoardError(path + "[0]", "the first point must be at duty 0, got %g" % pts[0][0])
    if pts[-1][0] != 1.0 or abs(pts[-1][1] - fs) > _EPS:
        m = "the last point must be [1.0, level_full_scale_ma] = [1.0, %g], got [%g, %g]"
        raise BoardError(p, m % (fs, pts[-1][0], pts[-1][1]))
    return pts


def validate(obj):
    """Check a board dict; return a new, normalised dict (defaults filled, numbers coerced)."""
    _section(obj, "", _TOP)
    b = {}
    used = {}  # GPIO -> the key that claimed it first

    v, p = _get(obj, "", "name")
    if not isinstance(v, str) or not v or [c for c in v if c not in _NAME_CHARS]:
        raise BoardError(p, "expected a non-empty string of a-z, 0-9 and _, got %s" % _what(v))
    b["name"] = v
    v, p = _get(obj, "", "description", "")
    if not isinstance(v, str):
        raise BoardError(p, "expected a string, got %s" % _what(v))
    b["description"] = v
    # What MicroPython on the hardware reports as sys.implementation._machine ("<board> with
    # <MCU>", MICROPY_HW_BOARD_NAME of the port's board build): stimctl flash refuses a board
    # file for other hardware.
    v, p = _get(obj, "", "hardware")
    if not isinstance(v, str) or not 0 < len(v) <= 64 or [c for c in v if not " " <= c <= "~"]:
        raise BoardError(p, "expected 1-64 printable ASCII characters, got %s" % _what(v))
    b["hardware"] = v
    _field(b, obj, "", "sysclk_hz", 48000000, 250000000, note=" (Hz)")

    # At most two: the RP2040 has four ADC inputs, and the boost and the battery take two of
    # them from the channels' SENSE; the wearer's channel selection (both, 1, 2) has two too.
    chans = _list(_get(obj, "", "channels")[0], "channels", 1, 2, "channel objects")
    b["channels"] = []
    pwm_outs = {}  # (slice, A/B) -> key. GPIO n and n+16 share one PWM output.
    for i, ch in enumerate(chans):
        cp = "channels[%d]" % i
        _section(ch, cp, _CHANNEL)
        c = {}
        a = _pin(used, c, ch, cp, "phase_a", _OUT)
        v, p = _get(ch, cp, "phase_b")
        if v != a + 1 or isinstance(v, bool):
            m = "must be phase_a + 1 = %d (one PIO state machine drives the pair), got %s"
            raise BoardError(p, m % (a + 1, _what(v)))
        _pin(used, c, ch, cp, "phase_b", _OUT)
        v = pwm_slice(_pin(used, c, ch, cp, "level_pwm", _OUT))
        if v in pwm_outs:
            m = "is PWM output %d%s, already used by %s (GPIO n and n+16 share one output)"
            raise BoardError(cp + ".level_pwm", m % (v[0], "AB"[v[1]], pwm_outs[v]))
        pwm_outs[v] = cp + ".level_pwm"
        _pin(used, c, ch, cp, "sense_adc", _ADC)
        _pin(used, c, ch, cp, "led")
        b["channels"].append(c)

    for key, keys in (("buttons", _BUTTONS), ("status_led", _RGB)):
        d = _section(_get(obj, "", key)[0], key, keys)
        b[key] = {}
        for k in keys:
            _pin(used, b[key], d, key, k)
    # Optional feedback outputs the wearer feels or hears (stim.feedback): a piezo driven by a
    # PWM tone, a vibration motor through a transistor. Low is off, as for every output.
    for key in ("buzzer", "haptic"):
        if key in obj:
            _pin(used, b, obj, "", key, _OUT)
    if "buzzer" in b:
        sl = pwm_slice(b["buzzer"])[0]
        for o in pwm_outs:
            if o[0] == sl:
                m = "is on PWM slice %d with %s: its tone would set that slice's frequency"
                raise BoardError("buzzer", m % (sl, pwm_outs[o]))
    # SR-17: the charger's "charging" signal (an input; `active`: the level that means it).
    if "charge_detect" in obj:
        s = _section(_get(obj, "", "charge_detect")[0], "charge_detect", ("pin", "active"))
        cd = b["charge_detect"] = {}
        _pin(used, cd, s, "charge_detect", "pin")
        v, p = _get(s, "charge_detect", "active")
        cd["active"] = _int(v, p, 0, 1, "the level that means charging,")
    # SR-16: "locked" keeps the USB console to the host protocol while the firmware runs (no
    # Ctrl-C, no REPL outside maintenance); "open", the default, is for development boards.
    con = obj.get("console", "open")
    if con != "open" and con != "locked":
        raise BoardError("console", 'must be "open" or "locked", not %r' % (con,))
    b["console"] = con
    _pin(used, b, obj, "", "boost_en", _OUT)
    _pin(used, b, obj, "", "boost_adc", _ADC)
    _pin(used, b, obj, "", "battery_adc", _ADC)

    s = _section(_get(obj, "", "analog")[0], "analog", _ANALOG)
    a = b["analog"] = {}
    _field(a, s, "analog", "adc_vref_v", 1.0, 3.6, default=3.3)
    _field(a, s, "analog", "level_pwm_hz", 10000, 1000000, default=100000)
    fs = _field(a, s, "analog", "level_full_scale_ma", 0.0, 200.0, True)
    v, p = _get(s, "analog", "level_calibration", [[0.0, 0.0], [1.0, fs]])
    a["level_calibration"] = _calibration(v, p, fs)
    _field(a, s, "analog", "sense_divider", 1.0, lo_open=True)
    _field(a, s, "analog", "sense_hold_tau_ms", 0.0, lo_open=True)
    _field(a, s, "analog", "compliance_v", 0.0, 150.0, True)
    _field(a, s, "analog", "boost_divider", 1.0, lo_open=True)
    _field(a, s, "analog", "boost_rise_ms", 0.0, lo_open=True, default=2.0)
    _field(a, s, "analog", "battery_divider", 1.0)
    # For the host's power model only (host_tools/sim/power.py): checked, not kept on the unit.
    _field({}, s, "analog", "boost_efficiency", 0.0, 1.0, True, 0.8)

    s = _section(_get(obj, "", "intensity")[0], "intensity", _INTENSITY)
    a = b["intensity"] = {}
    steps = _field(a, s, "intensity", "steps", 1, 100)
    step_ma = _field(a, s, "intensity", "step_ma", 0.0, 2.0, True, note=" mA per step (SR-2)")
    if steps * step_ma > fs + _EPS:
        m = "steps * step_ma = %g mA is above analog.level_full_scale_ma (%g mA)"
        raise BoardError("intensity.step_ma", m % (steps * step_ma, fs))

    s = _section(_get(obj, "", "limits")[0], "limits", _LIMITS)
    a = b["limits"] = {}
    _field(a, s, "limits", "max_peak_ma", 0.0, fs, True, note=" (analog.level_full_scale_ma)")
    _field(a, s, "limits", "max_charge_per_phase_uc", 0.0, lo_open=True)
    _field(a, s, "limits", "min_electrode_area_cm2", 0.0, lo_open=True)
    _field(a, s, "limits", "max_rms_ma_per_cm2", 0.0, 2.0, True, 2.0, " (SR-3)")
    _field(a, s, "limits", "max_power_w_per_cm2", 0.0, 0.25, True, 0.25, " (SR-3)")
    top = _field(a, s, "limits", "max_session_min", 1, 120)
    note = " (limits.max_session_min)"
    _field(a, s, "limits", "default_session_min", 1, top, default=min(30, top), note=note)

    s = _section(_get(obj, "", "battery", {})[0], "battery", _BATTERY)
    a = b["battery"] = {}
    _field(a, s, "battery", "full_v", 2.5, 4.35, default=4.2)
    _field(a, s, "battery", "warn_v", 2.5, 4.35, default=3.5)
    _field(a, s, "battery", "cutoff_v", 2.5, 4.35, default=3.3)
    _field(a, s, "battery", "hysteresis_v", 0.0, 0.5, True, 0.05)
    _field({}, s, "battery", "capacity_mah", 10, 100_000, default=500)  # host power model only
    for lo, hi in (("cutoff_v", "warn_v"), ("warn_v", "full_v")):
        if a[lo] >= a[hi]:
            m = "must be below battery.%s (%g), got %g"
            raise BoardError("battery." + lo, m % (hi, a[hi], a[lo]))
    return b


def parse(text, source="the board file"):
    """json.loads + validate. `source` names the text in the error message."""
    try:
        obj = json.loads(text)  # str or bytes
    except (ValueError, RuntimeError) as e:  # RuntimeError: nesting too deep to parse
        raise BoardError("<json>", "%s is not valid JSON (%s)" % (source, e)) from None
    return validate(obj)


def load(path="/board.json"):
    """Read, parse and validate a board file."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as e:
        raise BoardError("<file>", "cannot read board file %s (%s)" % (path, e)) from None
    return parse(text, "board file %s" % path)


def adc_channel(gpio):
    """ADC channel of an ADC pin: GPIO 26..29 -> 0..3."""
    return _int(gpio, "gpio", 26, 29, "an ADC pin") - 26


def pwm_slice(gpio):
    """RP2040 PWM output of a GPIO: (slice 0..7, channel 0 = A or 1 = B)."""
    _int(gpio, "gpio", 0, 29, "a GPIO number")
    return (gpio >> 1) & 7, gpio & 1
