"""The calendar of the simulated `time` (time.py imports it when gmtime or mktime is first
called): seconds since 1970-01-01 to a civil date and back (proleptic Gregorian), as the port's
shared/timeutils does."""


def gmtime(secs):
    days, rem = divmod(int(secs), 86400)
    # days since 1970-01-01 to a civil date (proleptic Gregorian)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    wday = (days + 3) % 7
    yday = (days - mktime((y, 1, 1, 0, 0, 0)) // 86400) + 1
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, wday, yday)


def mktime(t):
    y, m, d = t[0], t[1], t[2]
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return days * 86400 + t[3] * 3600 + t[4] * 60 + t[5]
