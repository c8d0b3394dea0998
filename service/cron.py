"""Classic (Vixie) cron expressions: parsing and matching of naive wall-clock minutes.

Pure and clock-free. This module knows nothing of time zones: :mod:`service.schedules` maps
the wall-clock minutes found here to real instants.

Syntax (as Vixie cron 4.1 reads a crontab line's five time fields):

* each field is a comma-separated list of ``*``, ``N``, ``N-M``, each optionally followed
  by ``/STEP`` (``*/15``, ``1-31/2``); ``N/STEP`` is read as ``N-MAX/STEP``, as cronie,
  Debian cron and croniter do;
* months accept ``jan``-``dec`` and days of week ``sun``-``sat`` (any case), also as range
  bounds; day of week is ``0``-``7`` where both ``0`` and ``7`` are Sunday, so ``Sun-Sun``,
  ``0-0`` and ``7-7`` all mean Sunday and ``5-7`` is Friday to Sunday;
* a range must not run backwards and a step must be at least 1;
* one extension, as cronsim and croniter read it: ``L`` in the day-of-month field is the
  last day of the month (a day-of-month value like any other for the day rule below);
* other Quartz/croniter extensions (``L`` in the day-of-week field, ``W``, ``#``, ``?``,
  hashed ``H``, random ``R``) are refused with an error naming them, never accepted and then
  never fired.

Day matching follows Vixie cron exactly: if either day field *begins with* ``*`` (``*``,
``*/2``), a day fires when it matches **both** the day-of-month and the day-of-week field;
otherwise when it matches **either**. So ``0 16 */2 * sat`` fires on Saturdays that are odd
days of the month, and ``0 0 30 2 3`` fires on every Wednesday of February.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

__all__ = ["CronExpr", "CronSyntaxError", "parse_cron"]

FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_BOUNDS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_LAST = "l"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_NAMES: tuple[dict[str, int], ...] = (
    {},
    {},
    {},
    {name: i + 1 for i, name in enumerate(_MONTHS)},
    {name: i for i, name in enumerate(_WEEKDAYS)},
)
# Longest days of each month (February: a leap year's).
_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_TERM_RE = re.compile(r"^(?:(\*)|([0-9a-z]+)(?:-([0-9a-z]+))?)(?:/([0-9]+))?$")
# Extensions of Quartz and croniter, recognised only to name them in the error.
_EXTENSIONS = (
    (re.compile(r"#"), "'#' (nth weekday of the month)"),
    (re.compile(r"\?"), "'?' (no specific value)"),
    (re.compile(r"^[0-9]*l$"), "'L' (last day)"),
    (re.compile(r"^[0-9l]*w$"), "'W' (nearest weekday)"),
    (re.compile(r"^h"), "'H' (hashed value)"),
    (re.compile(r"^r"), "'R' (random value)"),
)
_ONE_DAY = timedelta(days=1)
_ONE_MINUTE = timedelta(minutes=1)


class CronSyntaxError(ValueError):
    """A cron expression classic cron would refuse; the message names the field and why."""


@dataclass(frozen=True, slots=True)
class CronExpr:
    """A parsed 5-field expression: the set of values of each field and its day rule."""

    minutes: tuple[int, ...]  # sorted
    hours: tuple[int, ...]  # sorted
    days: frozenset[int]  # 1-31
    last_day: bool  # "L" in the day-of-month field
    months: frozenset[int]  # 1-12
    weekdays: frozenset[int]  # 0-6, 0 = Sunday
    days_and: bool  # a day field begins with "*": both day fields must match
    wildcard_time: bool  # the minute or hour field begins with "*" (see service.schedules)

    def day_matches(self, day: date) -> bool:
        """Whether cron fires on ``day`` at all (its month and day fields)."""
        if day.month not in self.months:
            return False
        dom = day.day in self.days or (self.last_day and (day + _ONE_DAY).day == 1)
        dow = day.isoweekday() % 7 in self.weekdays
        return (dom and dow) if self.days_and else (dom or dow)

    def next_after(self, wall: datetime) -> datetime | None:
        """The first matching minute strictly after the naive ``wall``; None past year 9999."""
        start = wall.replace(second=0, microsecond=0) + _ONE_MINUTE
        day: date | None = start.date()
        at = start.time()
        while day is not None:
            if day.month not in self.months:
                day = _first_of_next_month(day)
                at = time.min
                continue
            if self.day_matches(day):
                found = self._first_time(at)
                if found is not None:
                    return datetime.combine(day, found)
            day, at = _shift(day, _ONE_DAY), time.min
        return None

    def prev_before(self, wall: datetime) -> datetime | None:
        """The last matching minute strictly before the naive ``wall``; None before year 1."""
        start = (wall - timedelta(microseconds=1)).replace(second=0, microsecond=0)
        day: date | None = start.date()
        at = start.time()
        while day is not None:
            if day.month not in self.months:
                day = _last_of_previous_month(day)
                at = time.max
                continue
            if self.day_matches(day):
                found = self._last_time(at)
                if found is not None:
                    return datetime.combine(day, found)
            day, at = _shift(day, -_ONE_DAY), time.max
        return None

    def iter_after(self, wall: datetime) -> Iterator[datetime]:
        """Every matching minute strictly after ``wall``, ascending."""
        found = self.next_after(wall)
        while found is not None:
            yield found
            found = self.next_after(found)

    def iter_before(self, wall: datetime) -> Iterator[datetime]:
        """Every matching minute strictly before ``wall``, descending."""
        found = self.prev_before(wall)
        while found is not None:
            yield found
            found = self.prev_before(found)

    def _first_time(self, at: time) -> time | None:
        """The earliest matching time of day ``>= at`` (minute resolution)."""
        i = bisect_left(self.hours, at.hour)
        if i < len(self.hours) and self.hours[i] == at.hour:
            j = bisect_left(self.minutes, at.minute)
            if j < len(self.minutes):
                return time(at.hour, self.minutes[j])
            i += 1
        return time(self.hours[i], self.minutes[0]) if i < len(self.hours) else None

    def _last_time(self, at: time) -> time | None:
        """The latest matching time of day ``<= at`` (minute resolution)."""
        i = bisect_right(self.hours, at.hour) - 1
        if i >= 0 and self.hours[i] == at.hour:
            j = bisect_right(self.minutes, at.minute) - 1
            if j >= 0:
                return time(at.hour, self.minutes[j])
            i -= 1
        return time(self.hours[i], self.minutes[-1]) if i >= 0 else None


def parse_cron(expression: str) -> CronExpr:
    """Parse five whitespace-separated fields; raise :class:`CronSyntaxError` naming the
    field at fault, or saying the expression can never fire."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronSyntaxError(
            "cron expression must have exactly 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    lowered = [field.lower() for field in fields]
    dom_terms = lowered[2].split(",")
    last_day = _LAST in dom_terms
    if last_day:
        lowered[2] = ",".join(term for term in dom_terms if term != _LAST)
    values = [_parse_field(i, field) if field else set() for i, field in enumerate(lowered)]
    weekdays = frozenset(0 if v == 7 else v for v in values[4])
    expr = CronExpr(
        minutes=tuple(sorted(values[0])),
        hours=tuple(sorted(values[1])),
        days=frozenset(values[2]),
        last_day=last_day,
        months=frozenset(values[3]),
        weekdays=weekdays,
        days_and=fields[2].startswith("*") or fields[4].startswith("*"),
        wildcard_time=fields[0].startswith("*") or fields[1].startswith("*"),
    )
    if (
        expr.days_and
        and not last_day
        and not any(d <= _MAX_DAYS[m] for m in expr.months for d in expr.days)
    ):
        # Under AND every (month, day) pair falls on every weekday within 400 years, so
        # the expression fires unless no month in it has any of its days.
        raise CronSyntaxError(
            f"{expression!r} can never fire: none of its months has any of its days of the month"
        )
    return expr


def _parse_field(index: int, field: str) -> set[int]:
    out: set[int] = set()
    for term in field.split(","):
        out |= _parse_term(index, term)
    return out


def _parse_term(index: int, term: str) -> set[int]:
    name = FIELD_NAMES[index]
    low, high = _BOUNDS[index]
    match = _TERM_RE.match(term)
    if match is None:
        raise _term_error(name, term)
    star, first, last, step_text = match.groups()
    if star:
        start, end = low, high
    else:
        start = _value(index, first)
        end = _value(index, last) if last is not None else (high if step_text else start)
        if end < start:
            raise CronSyntaxError(f"{name} range {term!r} runs backwards")
    step = 1 if step_text is None else int(step_text)
    if step < 1:
        raise CronSyntaxError(f"{name} step in {term!r} must be at least 1")
    return set(range(start, end + 1, step))


def _value(index: int, text: str) -> int:
    name = FIELD_NAMES[index]
    low, high = _BOUNDS[index]
    if text in _NAMES[index]:
        return _NAMES[index][text]
    if not text.isdigit():
        raise _term_error(name, text)
    value = int(text)
    if not low <= value <= high:
        raise CronSyntaxError(f"{name} value {value} is out of range {low}-{high}")
    return value


def _term_error(name: str, term: str) -> CronSyntaxError:
    for pattern, meaning in _EXTENSIONS:
        if pattern.search(term):
            return CronSyntaxError(
                f"{meaning} is not classic cron and is not supported (in the {name} field: "
                f"{term!r})"
            )
    return CronSyntaxError(f"{term!r} is not a valid {name} value")


def _shift(day: date, by: timedelta) -> date | None:
    try:
        return day + by
    except OverflowError:
        return None


def _first_of_next_month(day: date) -> date | None:
    if day.month == 12:
        return None if day.year == date.max.year else date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def _last_of_previous_month(day: date) -> date | None:
    return _shift(day.replace(day=1), -_ONE_DAY)
