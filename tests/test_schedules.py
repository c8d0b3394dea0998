"""Tests for service.schedules: validation, DST semantics, interval maths, keys."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from service.schedules import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    fire_times,
    latest_fire_time,
    schedule_key,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
SCHEDULE = TypeAdapter(Schedule)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def local(
    tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0, *, fold: int = 0
) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=tz, fold=fold)


def cron(expr: str, tz: str = "UTC") -> CronSchedule:
    return CronSchedule(cron=expr, timezone=tz)


def fires_between(s: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """All fires in [start, end)."""
    return fire_times(
        s, start - timedelta(microseconds=1), until=end - timedelta(microseconds=1), limit=100_000
    )


def local_days(tz: ZoneInfo, first: date, last: date) -> list[tuple[date, datetime, datetime]]:
    """(day, start, end) of each local day in [first, last], as aware local datetimes."""
    out = []
    d = first
    while d <= last:
        nxt = d + timedelta(days=1)
        out.append((d, local(tz, d.year, d.month, d.day), local(tz, nxt.year, nxt.month, nxt.day)))
        d = nxt
    return out


def gaps(times: list[datetime]) -> set[float]:
    return {(b - a).total_seconds() for a, b in pairwise(times)}


def assert_well_formed(times: list[datetime], after: datetime) -> None:
    assert all(t.tzinfo is UTC for t in times)
    assert all(t > after for t in times)
    assert all(a < b for a, b in pairwise(times))


# --------------------------------------------------------------------------------------
# Fixed-time crons across DST changes
# --------------------------------------------------------------------------------------

CHANGE_WEEKS = [(date(2026, 3, 23), date(2026, 4, 5)), (date(2026, 10, 19), date(2026, 11, 1))]


@pytest.mark.parametrize(("first", "last"), CHANGE_WEEKS)
def test_daily_0900_berlin_fires_once_per_local_day_at_0900(first: date, last: date) -> None:
    s = cron("0 9 * * *", "Europe/Berlin")
    for day, start, end in local_days(BERLIN, first, last):
        fires = fires_between(s, start, end)
        assert len(fires) == 1, day
        loc = fires[0].astimezone(BERLIN)
        assert (loc.date(), loc.hour, loc.minute) == (day, 9, 0)


def test_daily_0230_berlin_across_both_changes() -> None:
    s = cron("30 2 * * *", "Europe/Berlin")
    for first, last in CHANGE_WEEKS:
        for day, start, end in local_days(BERLIN, first, last):
            fires = fires_between(s, start, end)
            assert len(fires) == 1, day
            if day == date(2026, 3, 29):
                # 02:30 does not exist: fire at the first instant after the gap.
                assert fires == [utc(2026, 3, 29, 1, 0)]
                assert fires[0].astimezone(BERLIN).strftime("%H:%M %Z") == "03:00 CEST"
            elif day == date(2026, 10, 25):
                # 02:30 happens twice: fire once, at the first (CEST) occurrence.
                assert fires == [utc(2026, 10, 25, 0, 30)]
                assert fires[0].astimezone(BERLIN).strftime("%H:%M %Z") == "02:30 CEST"
            else:
                loc = fires[0].astimezone(BERLIN)
                assert (loc.date(), loc.hour, loc.minute) == (day, 2, 30)


def test_fixed_time_in_gap_fires_once_even_if_several_slots_map_there() -> None:
    # 02:00, 02:30 (gap) and 03:00 all map to 03:00 CEST: exactly one fire there.
    s = cron("0,30 2 * * *", "Europe/Berlin")
    fires = fires_between(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert fires == [utc(2026, 3, 29, 1, 0)]
    s = cron("0 2,3 * * *", "Europe/Berlin")
    fires = fires_between(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12))
    assert fires == [utc(2026, 3, 29, 1, 0)]


def test_new_york_fixed_time() -> None:
    s = cron("30 2 * * *", "America/New_York")
    # 2026-03-08: 02:00 EST -> 03:00 EDT; 02:30 fires at 03:00 EDT = 07:00 UTC.
    assert fires_between(s, utc(2026, 3, 8), utc(2026, 3, 9)) == [utc(2026, 3, 8, 7, 0)]
    s = cron("30 1 * * *", "America/New_York")
    # 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 fires once, at 01:30 EDT = 05:30 UTC.
    assert fires_between(s, utc(2026, 11, 1), utc(2026, 11, 2)) == [utc(2026, 11, 1, 5, 30)]
    s = cron("0 9 * * 1-5", "America/New_York")
    fires = fires_between(s, utc(2026, 3, 2), utc(2026, 3, 14))
    assert [f.astimezone(NEW_YORK).strftime("%a %H:%M") for f in fires] == [
        f"{d} 09:00" for d in ["Mon", "Tue", "Wed", "Thu", "Fri"] * 2
    ]
    assert fires[4] - fires[0] == timedelta(days=4)  # before the change: 14:00 UTC
    assert fires[5] == utc(2026, 3, 9, 13, 0)  # after the change: 13:00 UTC


# --------------------------------------------------------------------------------------
# Wildcard crons across DST changes
# --------------------------------------------------------------------------------------


def test_hourly_berlin_fires_every_real_hour() -> None:
    s = cron("0 * * * *", "Europe/Berlin")
    per_day: Counter[date] = Counter()
    for first, last in CHANGE_WEEKS:
        start = local(BERLIN, first.year, first.month, first.day)
        end = local(BERLIN, last.year, last.month, last.day)
        fires = fires_between(s, start, end)
        assert gaps(fires) == {3600.0}
        per_day.update(f.astimezone(BERLIN).date() for f in fires)
    assert per_day[date(2026, 3, 28)] == 24
    assert per_day[date(2026, 3, 29)] == 23
    assert per_day[date(2026, 3, 30)] == 24
    assert per_day[date(2026, 10, 24)] == 24
    assert per_day[date(2026, 10, 25)] == 25
    assert per_day[date(2026, 10, 26)] == 24


@pytest.mark.parametrize("tz", ["Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize(
    ("expr", "spacing"), [("30 * * * *", 3600.0), ("*/15 * * * *", 900.0), ("@hourly", 3600.0)]
)
def test_wildcard_crons_keep_real_spacing(tz: str, expr: str, spacing: float) -> None:
    s = cron(expr, tz)
    for start, end in [
        (utc(2026, 3, 7), utc(2026, 3, 10)),
        (utc(2026, 3, 27), utc(2026, 3, 31)),
        (utc(2026, 10, 23), utc(2026, 10, 27)),
        (utc(2026, 10, 30), utc(2026, 11, 3)),
    ]:
        fires = fires_between(s, start, end)
        assert len(set(fires)) == len(fires)
        assert gaps(fires) == {spacing}
        assert len(fires) == (end - start).total_seconds() / spacing


def test_wildcard_minute_with_fixed_hour_follows_the_wall_clock() -> None:
    # Minute is a wildcard, so this is a wildcard job: the skipped hour does not run at
    # all, and the repeated hour runs twice (classic cron).
    s = cron("*/5 2 * * *", "Europe/Berlin")
    assert fires_between(s, utc(2026, 3, 28, 12), utc(2026, 3, 29, 12)) == []
    fires = fires_between(s, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert len(fires) == 24
    assert fires[0] == utc(2026, 10, 25, 0, 0)
    assert fires[-1] == utc(2026, 10, 25, 1, 55)


def test_daily_alias_is_fixed_time() -> None:
    s = cron("@daily", "America/Santiago")  # Chile changes clocks at midnight
    fires = fires_between(s, utc(2026, 1, 1), utc(2027, 1, 1))
    dates = [f.astimezone(ZoneInfo("America/Santiago")).date() for f in fires]
    assert len(dates) == len(set(dates)) == 365


# --------------------------------------------------------------------------------------
# Window / limit / boundary behaviour
# --------------------------------------------------------------------------------------


def test_after_exactly_on_fire_time_excludes_it() -> None:
    s = cron("0 9 * * *", "Europe/Berlin")
    assert fire_times(s, utc(2026, 6, 1, 7, 0), limit=2) == [utc(2026, 6, 2, 7), utc(2026, 6, 3, 7)]
    assert fire_times(s, utc(2026, 6, 1, 6, 59, 59, 999999), limit=1) == [utc(2026, 6, 1, 7)]
    i = IntervalSchedule(interval_seconds=60)
    assert fire_times(i, utc(2026, 6, 1, 7, 0), limit=1) == [utc(2026, 6, 1, 7, 1)]


def test_until_is_inclusive_and_limit_caps() -> None:
    s = cron("*/15 * * * *")
    assert fire_times(s, utc(2026, 1, 1), until=utc(2026, 1, 1, 1), limit=100) == [
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
        utc(2026, 1, 1, 0, 45),
        utc(2026, 1, 1, 1),
    ]
    assert fire_times(s, utc(2026, 1, 1), until=utc(2026, 1, 1, 1), limit=2) == [
        utc(2026, 1, 1, 0, 15),
        utc(2026, 1, 1, 0, 30),
    ]
    assert fire_times(s, utc(2026, 1, 1), limit=0) == []
    assert fire_times(s, utc(2026, 1, 1), until=utc(2026, 1, 1), limit=5) == []
    assert fire_times(s, utc(2026, 1, 1), until=utc(2025, 1, 1), limit=5) == []


def test_after_in_any_timezone() -> None:
    s = cron("0 9 * * *", "Europe/Berlin")
    tokyo = ZoneInfo("Asia/Tokyo")
    after = datetime(2026, 6, 1, 15, 0, tzinfo=tokyo)  # == 06:00 UTC == 08:00 Berlin
    assert fire_times(s, after, limit=1) == [utc(2026, 6, 1, 7)]
    assert fire_times(s, after.astimezone(timezone(timedelta(hours=-5))), limit=1) == [
        utc(2026, 6, 1, 7)
    ]


def test_after_in_first_pass_of_repeated_hour_sees_second_pass() -> None:
    s = cron("*/30 * * * *", "Europe/Berlin")
    after = local(BERLIN, 2026, 10, 25, 2, 45)  # first pass (CEST) == 00:45 UTC
    assert fire_times(s, after, limit=4) == [
        utc(2026, 10, 25, 1, 0),  # 02:00 CET
        utc(2026, 10, 25, 1, 30),  # 02:30 CET
        utc(2026, 10, 25, 2, 0),  # 03:00 CET
        utc(2026, 10, 25, 2, 30),
    ]
    after = local(BERLIN, 2026, 10, 25, 2, 15, fold=1)  # second pass (CET) == 01:15 UTC
    assert fire_times(s, after, limit=2) == [utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 2, 0)]
    fixed = cron("45 2 * * *", "Europe/Berlin")
    # Fixed-time: the second 02:45 is not a fire time.
    assert fire_times(fixed, after, limit=1) == [utc(2026, 10, 26, 1, 45)]


def test_naive_instants_are_rejected() -> None:
    s = cron("* * * * *")
    with pytest.raises(ValueError, match="after must be a timezone-aware"):
        fire_times(s, datetime(2026, 1, 1), limit=1)
    with pytest.raises(ValueError, match="until must be a timezone-aware"):
        fire_times(s, utc(2026, 1, 1), until=datetime(2026, 1, 2), limit=1)
    with pytest.raises(ValueError, match="before must be a timezone-aware"):
        latest_fire_time(s, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="limit"):
        fire_times(s, utc(2026, 1, 1), limit=-1)


def test_rare_crons() -> None:
    leap = cron("0 0 29 2 *")
    assert fire_times(leap, utc(2026, 1, 1), limit=2) == [utc(2028, 2, 29), utc(2032, 2, 29)]
    assert latest_fire_time(leap, utc(2026, 6, 1)) == utc(2024, 2, 29)
    assert latest_fire_time(leap, utc(2026, 6, 1), not_before=utc(2025, 1, 1)) is None
    # Classic cron: day-of-month and day-of-week both restricted -> either matches.
    s = cron("0 12 13 * 5")
    fires = fire_times(s, utc(2026, 2, 1), limit=6)
    assert [f.day for f in fires] == [6, 13, 20, 27, 6, 13]  # Fridays and the 13th


# --------------------------------------------------------------------------------------
# Interval schedules
# --------------------------------------------------------------------------------------


def test_interval_without_anchor_is_aligned_to_the_unix_epoch() -> None:
    s = IntervalSchedule(interval_seconds=3600)
    assert fire_times(s, utc(2026, 3, 29, 0, 30), limit=3) == [
        utc(2026, 3, 29, 1),
        utc(2026, 3, 29, 2),
        utc(2026, 3, 29, 3),
    ]
    odd = IntervalSchedule(interval_seconds=7)
    (first,) = fire_times(odd, utc(2026, 1, 1), limit=1)
    assert (first - utc(1970, 1, 1)).total_seconds() % 7 == 0
    assert first - utc(2026, 1, 1) <= timedelta(seconds=7)


def test_interval_with_anchor() -> None:
    anchor = datetime(2026, 1, 1, 10, 0, 5, tzinfo=ZoneInfo("Europe/Berlin"))  # 09:00:05 UTC
    s = IntervalSchedule(interval_seconds=600, anchor=anchor)
    # `after` before the anchor: the anchor itself is first.
    assert fire_times(s, utc(2025, 1, 1), limit=2) == [
        utc(2026, 1, 1, 9, 0, 5),
        utc(2026, 1, 1, 9, 10, 5),
    ]
    assert fire_times(s, utc(2026, 1, 1, 9, 0, 5), limit=1) == [utc(2026, 1, 1, 9, 10, 5)]
    assert fire_times(s, utc(2026, 1, 1, 9, 55), until=utc(2026, 1, 1, 10, 20, 5), limit=9) == [
        utc(2026, 1, 1, 10, 0, 5),
        utc(2026, 1, 1, 10, 10, 5),
        utc(2026, 1, 1, 10, 20, 5),
    ]
    # Interval schedules ignore DST: 24 h of real time across the Berlin change.
    daily = IntervalSchedule(interval_seconds=86400, anchor=local(BERLIN, 2026, 3, 28, 9))
    assert gaps(fire_times(daily, utc(2026, 3, 1), limit=3)) == {86400.0}
    assert latest_fire_time(s, utc(2026, 1, 1, 9, 10, 5)) == utc(2026, 1, 1, 9, 0, 5)
    assert latest_fire_time(s, utc(2026, 1, 1, 9, 10, 6)) == utc(2026, 1, 1, 9, 10, 5)
    assert latest_fire_time(s, utc(2026, 1, 1, 9, 0, 5)) is None  # nothing before the anchor
    assert latest_fire_time(s, utc(2027, 1, 1), not_before=utc(2026, 12, 31, 23, 55)) is None
    assert latest_fire_time(s, utc(2027, 1, 1), not_before=utc(2026, 12, 31, 23, 50)) == utc(
        2026, 12, 31, 23, 50, 5
    )


def test_interval_results_are_utc() -> None:
    s = IntervalSchedule(interval_seconds=90, anchor=datetime(2026, 1, 1, tzinfo=NEW_YORK))
    times = fire_times(s, utc(2026, 1, 1), limit=5)
    assert_well_formed(times, utc(2026, 1, 1))
    assert times[0] == utc(2026, 1, 1, 5)


# --------------------------------------------------------------------------------------
# latest_fire_time
# --------------------------------------------------------------------------------------


def test_latest_fire_time_after_long_downtime() -> None:
    s = cron("0 9 * * *", "Europe/Berlin")
    before = utc(2026, 6, 1, 12)
    assert latest_fire_time(s, before) == utc(2026, 6, 1, 7)
    assert latest_fire_time(s, utc(2026, 6, 1, 7)) == utc(2026, 5, 31, 7)  # strictly before
    assert latest_fire_time(s, before, not_before=utc(2026, 6, 1, 7)) == utc(2026, 6, 1, 7)
    assert latest_fire_time(s, before, not_before=utc(2026, 6, 1, 7, 1)) is None
    assert latest_fire_time(cron("0 0 1 1 *"), utc(2026, 6, 1)) == utc(2026, 1, 1)


def test_latest_fire_time_in_repeated_hour() -> None:
    s = cron("*/30 * * * *", "Europe/Berlin")
    # `before` in the second pass (CET): the newest fire is the second 02:00.
    assert latest_fire_time(s, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 1, 0)
    # `before` = 02:10 CET (second pass); the newest fire is 02:50 CEST, whose wall time is
    # later than `before`'s: the backwards walk must start above `before`'s wall time.
    s = cron("50 * * * *", "Europe/Berlin")
    assert latest_fire_time(s, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 50)
    fixed = cron("50 2 * * *", "Europe/Berlin")
    assert latest_fire_time(fixed, utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 25, 0, 50)
    fixed = cron("30 2 * * *", "Europe/Berlin")
    assert latest_fire_time(fixed, utc(2026, 10, 25, 1, 45)) == utc(2026, 10, 25, 0, 30)
    assert latest_fire_time(fixed, utc(2026, 3, 29, 1, 0, 1)) == utc(2026, 3, 29, 1, 0)


# --------------------------------------------------------------------------------------
# Property tests
# --------------------------------------------------------------------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "Pacific/Chatham",  # +12:45 / +13:45
    "America/Santiago",  # changes at midnight
    "America/St_Johns",  # -03:30 / -02:30
    "Asia/Kolkata",
]
CRONS = [
    "0 9 * * *",
    "30 2 * * *",
    "0 * * * *",
    "30 * * * *",
    "*/15 * * * *",
    "*/20 1-3 * * *",
    "0 0 * * *",
    "45 1 * * 1-5",
    "0 2,3 * * *",
    "0 0-23 * * *",
    "0 */2 * * *",
    "15 1,2,3 * * 0",
    "0 9 1 * 1",
    "59 23 * * *",
    "@hourly",
    "@daily",
]
FIXED_DAILY = ["0 9 * * *", "30 2 * * *", "0 0 * * *", "59 23 * * *", "30 1 * * *", "0 2 * * *"]

aware_2026 = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2026, 12, 31),
    timezones=st.sampled_from([UTC, *(ZoneInfo(z) for z in ZONES)]),
    allow_imaginary=False,
)


@lru_cache
def transitions_2026(zone: str) -> tuple[datetime, ...]:
    """UTC hours in 2026 during which the zone's offset changes."""
    tz = ZoneInfo(zone)
    out = []
    t = utc(2026, 1, 1)
    while t.year == 2026:
        if t.astimezone(tz).utcoffset() != (t + HOUR).astimezone(tz).utcoffset():
            out.append(t)
        t += HOUR
    return tuple(out)


@st.composite
def near_dst(draw: st.DrawFn, zone: str) -> datetime:
    """An instant in 2026, usually within a day of one of the zone's offset changes."""
    candidates = transitions_2026(zone)
    if not candidates or (draw(st.booleans()) and draw(st.booleans())):
        return draw(aware_2026)
    center = draw(st.sampled_from(candidates))
    offset = draw(st.integers(-36 * 3600 * 10**6, 36 * 3600 * 10**6))
    return center + timedelta(microseconds=offset)


@st.composite
def cron_cases(draw: st.DrawFn, crons: list[str] = CRONS) -> tuple[CronSchedule, datetime]:
    zone = draw(st.sampled_from(ZONES))
    return cron(draw(st.sampled_from(crons)), zone), draw(near_dst(zone))


def _matches(expanded: list[list[Any]], wall: datetime) -> bool:
    """Independent classic-cron matcher on a naive wall time (no L/W/# support)."""
    minute, hour, dom, month, dow = expanded

    def ok(field: list[Any], value: int) -> bool:
        return field == ["*"] or value in field

    if not (ok(minute, wall.minute) and ok(hour, wall.hour) and ok(month, wall.month)):
        return False
    dom_ok, dow_ok = ok(dom, wall.day), ok(dow, wall.isoweekday() % 7)
    if dom != ["*"] and dow != ["*"]:
        return dom_ok or dow_ok
    return dom_ok and dow_ok


ALIASES = {"@hourly": "0 * * * *", "@daily": "0 0 * * *"}


def reference_fire_times(s: CronSchedule, after: datetime, until: datetime) -> list[datetime]:
    """Brute force over every real minute in (after, until], straight from the cron rules."""
    expr = ALIASES.get(s.cron, s.cron)
    expanded = croniter.expand(expr)[0]
    wildcard = expr.split()[0].startswith("*") or expr.split()[1].startswith("*")
    tz = ZoneInfo(s.timezone)
    out = []
    t = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    while t <= until:
        loc = t.astimezone(tz)
        wall = loc.replace(tzinfo=None, fold=0)
        prev = (t - timedelta(minutes=1)).astimezone(tz)
        jump = loc.utcoffset() - prev.utcoffset()  # type: ignore[operator]
        if _matches(expanded, wall) and (loc.fold == 0 or wildcard):
            out.append(t)
        elif not wildcard and jump > timedelta(0):
            # Clocks just went forward: fixed-time slots in the skipped wall span fire now.
            skipped = wall - jump
            while skipped < wall and not _matches(expanded, skipped):
                skipped += timedelta(minutes=1)
            if skipped < wall:
                out.append(t)
        t += timedelta(minutes=1)
    return out


@settings(max_examples=300, deadline=None)
@given(cron_cases(), st.integers(1, 10 * 60))
def test_matches_brute_force_reference(case: tuple[CronSchedule, datetime], minutes: int) -> None:
    s, after = case
    until = after + timedelta(minutes=minutes)
    assert fire_times(s, after, until=until, limit=10_000) == reference_fire_times(s, after, until)


@settings(max_examples=300, deadline=None)
@given(cron_cases(), st.integers(1, 40))
def test_fire_times_well_formed(case: tuple[CronSchedule, datetime], limit: int) -> None:
    s, after = case
    times = fire_times(s, after, limit=limit)
    assert len(times) == limit
    assert_well_formed(times, after)


@settings(max_examples=200, deadline=None)
@given(cron_cases(FIXED_DAILY))
def test_fixed_time_daily_fires_once_per_local_date(case: tuple[CronSchedule, datetime]) -> None:
    s, after = case
    tz = ZoneInfo(s.timezone)
    times = fire_times(s, after, limit=20)
    dates = [t.astimezone(tz).date() for t in times]
    assert len(set(dates)) == len(dates)
    assert all((b - a).days == 1 for a, b in pairwise(dates))


@settings(max_examples=300, deadline=None)
@given(cron_cases(), st.integers(1, 10))
def test_pagination_is_consistent(case: tuple[CronSchedule, datetime], split: int) -> None:
    s, after = case
    whole = fire_times(s, after, limit=12)
    assert whole[:split] + fire_times(s, whole[split - 1], limit=12 - split) == whole


@settings(max_examples=300, deadline=None)
@given(cron_cases(), st.integers(0, 36 * 3600 * 10**6))
def test_latest_fire_time_agrees_with_fire_times(
    case: tuple[CronSchedule, datetime], window_us: int
) -> None:
    s, after = case
    before = after + timedelta(microseconds=window_us)
    window = fire_times(s, after, until=before - timedelta(microseconds=1), limit=100_000)
    expected = window[-1] if window else None
    assert latest_fire_time(s, before, not_before=after + timedelta(microseconds=1)) == expected
    if window:
        assert latest_fire_time(s, before) == expected
    else:
        newest = latest_fire_time(s, before)
        assert newest is not None and newest <= after
        assert fire_times(s, newest, limit=1)[0] >= before


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 366 * 86400),
    st.none() | aware_2026,
    aware_2026,
    st.integers(1, 20),
)
def test_interval_properties(
    seconds: int, anchor: datetime | None, after: datetime, limit: int
) -> None:
    s = IntervalSchedule(interval_seconds=seconds, anchor=anchor)
    times = fire_times(s, after, limit=limit)
    assert len(times) == limit
    assert_well_formed(times, after)
    assert gaps(times) <= {float(seconds)}
    start = anchor or utc(1970, 1, 1)
    assert times[0] >= start
    assert ((times[0] - start) / timedelta(seconds=1)) % seconds == 0
    if times[0] > start:  # not the anchor itself: the previous slot is <= after
        assert times[0] - timedelta(seconds=seconds) <= after
    assert latest_fire_time(s, times[-1]) == (
        times[-2] if limit > 1 else latest_fire_time(s, times[0])
    )
    assert latest_fire_time(s, times[-1] + timedelta(microseconds=1)) == times[-1]


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------


def error_for(data: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as info:
        SCHEDULE.validate_python(data)
    (err,) = info.value.errors()
    return dict(err)


@pytest.mark.parametrize(
    "expr",
    [
        "* * *",
        "61 * * * *",
        "0 0 * * * *",  # 6 fields (seconds)
        "0 0 * * * * 2026",  # 7 fields (year)
        "@reboot",
        "@often",
        "",
        "0 24 * * *",
        "R * * * *",  # random: non-deterministic
        "H * * * *",
        "0 0 30 2 *",  # can never fire
        "*/0 * * * *",
    ],
)
def test_invalid_cron(expr: str) -> None:
    err = error_for({"kind": "cron", "cron": expr})
    assert err["loc"][-1] == "cron"
    with pytest.raises(ValidationError) as info:
        CronSchedule(cron=expr)
    assert info.value.errors()[0]["loc"] == ("cron",)


def test_cron_error_messages() -> None:
    assert "exactly 5 fields" in error_for({"kind": "cron", "cron": "0 0 * * * *"})["msg"]
    assert "@reboot" in error_for({"kind": "cron", "cron": "@reboot"})["msg"]
    assert "61 * * * *" in error_for({"kind": "cron", "cron": "61 * * * *"})["msg"]


@pytest.mark.parametrize(
    "expr", ["@hourly", "@DAILY", "@weekly", "@monthly", "@yearly", "0 9 * * MON-FRI", "0 0 L * *"]
)
def test_valid_cron(expr: str) -> None:
    s = CronSchedule(cron=expr)
    assert fire_times(s, utc(2026, 1, 1), limit=2)


def test_cron_whitespace_is_normalised() -> None:
    assert CronSchedule(cron="  0   9 * *\t*  ").cron == "0 9 * * *"
    assert CronSchedule(cron="@Daily").cron == "@daily"


@pytest.mark.parametrize("tz", ["Mars/Base", "localtime", "", "../etc/passwd", "europe/berlin"])
def test_unknown_timezone(tz: str) -> None:
    err = error_for({"kind": "cron", "cron": "0 9 * * *", "timezone": tz})
    assert err["loc"][-1] == "timezone"
    assert err["msg"] == f"unknown timezone {tz!r}"


def test_timezone_message() -> None:
    with pytest.raises(ValidationError, match="unknown timezone 'Mars/Base'"):
        CronSchedule(cron="0 9 * * *", timezone="Mars/Base")


def test_naive_anchor_rejected() -> None:
    err = error_for({"kind": "interval", "interval_seconds": 60, "anchor": "2026-01-01T00:00:00"})
    assert err["loc"][-1] == "anchor"
    with pytest.raises(ValidationError) as info:
        IntervalSchedule(interval_seconds=60, anchor=datetime(2026, 1, 1))
    assert info.value.errors()[0]["loc"] == ("anchor",)


@pytest.mark.parametrize("seconds", [0, -5, 366 * 86400 + 1, True, 1.5, "60"])
def test_bad_interval(seconds: object) -> None:
    err = error_for({"kind": "interval", "interval_seconds": seconds})
    assert err["loc"][-1] == "interval_seconds"


def test_interval_bounds_accepted() -> None:
    assert IntervalSchedule(interval_seconds=1).interval_seconds == 1
    assert IntervalSchedule(interval_seconds=366 * 86400).interval_seconds == 366 * 86400


def test_extra_fields_and_discriminator() -> None:
    err = error_for({"kind": "cron", "cron": "0 9 * * *", "tz": "UTC"})
    assert err["type"] == "extra_forbidden"
    assert err["loc"][-1] == "tz"
    assert isinstance(
        SCHEDULE.validate_python({"kind": "interval", "interval_seconds": 5}), IntervalSchedule
    )
    assert isinstance(SCHEDULE.validate_json('{"kind": "cron", "cron": "@daily"}'), CronSchedule)
    anchored = SCHEDULE.validate_json(
        '{"kind": "interval", "interval_seconds": 5, "anchor": "2026-01-01T00:00:00+02:00"}'
    )
    assert isinstance(anchored, IntervalSchedule)
    assert anchored.anchor == utc(2025, 12, 31, 22)
    weekly = error_for({"kind": "weekly"})
    assert weekly["type"] == "schedule_kind" and "'cron' or 'interval'" in weekly["msg"]
    # Without "kind": the OpenAPI default (cron), or interval when interval_seconds is given.
    assert isinstance(SCHEDULE.validate_json('{"cron": "@daily"}'), CronSchedule)
    assert isinstance(SCHEDULE.validate_python({"interval_seconds": 5}), IntervalSchedule)


# --------------------------------------------------------------------------------------
# schedule_key
# --------------------------------------------------------------------------------------


def test_schedule_key() -> None:
    a = cron("0 9 * * *", "Europe/Berlin")
    key = schedule_key(a)
    assert len(key) == 16
    int(key, 16)
    assert schedule_key(cron("0 9 * * *", "Europe/Berlin")) == key
    assert (
        schedule_key(CronSchedule(cron="0  9 * * *", timezone="Europe/Berlin", active=False)) == key
    )
    assert schedule_key(cron("0 10 * * *", "Europe/Berlin")) != key
    assert schedule_key(cron("0 9 * * *", "Europe/London")) != key
    assert schedule_key(cron("@daily")) == schedule_key(cron("0 0 * * *"))
    assert schedule_key(cron("0 9 * * MON")) == schedule_key(cron("0 9 * * mon"))

    i = IntervalSchedule(interval_seconds=60)
    assert schedule_key(i) == schedule_key(IntervalSchedule(interval_seconds=60, active=False))
    assert schedule_key(i) == schedule_key(
        IntervalSchedule(interval_seconds=60, anchor=utc(1970, 1, 1))
    )
    assert schedule_key(i) != schedule_key(IntervalSchedule(interval_seconds=61))
    anchored = IntervalSchedule(interval_seconds=60, anchor=utc(2026, 1, 1, 8))
    assert schedule_key(anchored) != schedule_key(i)
    assert schedule_key(anchored) == schedule_key(
        IntervalSchedule(interval_seconds=60, anchor=local(BERLIN, 2026, 1, 1, 9))
    )
    assert schedule_key(i) != schedule_key(cron("* * * * *"))


def test_schedule_key_is_pinned() -> None:
    # Keys are persisted: changing the canonical form would orphan every stored schedule.
    assert schedule_key(cron("0 9 * * *", "Europe/Berlin")) == "863f5bcf29094543"
    assert schedule_key(IntervalSchedule(interval_seconds=60)) == "b5208eb384eac359"
