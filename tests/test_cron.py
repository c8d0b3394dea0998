"""Classic (Vixie) cron semantics, checked against two independent implementations:
cronsim (Debian cron's rules) and croniter with ``implement_cron_bug`` (Vixie's day rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from cronsim import CronSim
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from service.cron import CronSyntaxError, parse_cron
from service.schedules import CronSchedule, fire_times, latest_fire_time

BOUNDS = {"minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 7)}
DOW_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@st.composite
def term(draw: st.DrawFn, field: str, names: bool, croniter_safe: bool) -> str:
    low, high = BOUNDS[field]
    kind = draw(st.sampled_from(["star", "star_step", "value", "range", "range_step"]))
    step = draw(st.integers(1, high - low + 1))
    if kind == "star":
        return "*"
    if kind == "star_step":
        return f"*/{step}"
    if croniter_safe and field == "dow":
        # croniter reads Sunday (0 or 7) wrongly in ranges ("0-0", "7-7", "5-7"; see the
        # Sunday tests below): its day-of-week values stay within Monday-Saturday.
        low, high = 1, 6
    first = draw(st.integers(low, high - 1))
    # A one-value range with a step ("5-5/2") cronsim reads as "5/2" (Vixie: just 5), and
    # croniter reads any one-value range ("5-5") as "*": ranges here span two values or more.
    one_value_ok = kind == "range" and not croniter_safe
    last = draw(st.integers(first if one_value_ok else first + 1, high))

    def show(value: int) -> str:
        if names and field == "dow" and value < 7 and draw(st.booleans()):
            return DOW_NAMES[value]
        return str(value)

    if kind == "value":
        return show(first)
    if kind == "range":
        return f"{show(first)}-{show(last)}"
    return f"{show(first)}-{show(last)}/{step}"


@st.composite
def expressions(draw: st.DrawFn, croniter_safe: bool = False) -> str:
    parts = []
    for name in BOUNDS:
        terms = draw(st.lists(term(name, not croniter_safe, croniter_safe), min_size=1, max_size=3))
        if croniter_safe:
            # croniter takes a day field that covers every day ("1,*") for "*", where cron
            # looks only at its first character: a "*" term comes first here.
            terms.sort(key=lambda t: not t.startswith("*"))
        elif name == "dom" and draw(st.integers(0, 5)) == 0:
            terms.append("L")
        parts.append(",".join(terms))
    expr = " ".join(parts)
    try:
        parse_cron(expr)
    except CronSyntaxError:  # can never fire; each library refuses it its own way
        assume(False)
    return expr


starts = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1)).map(
    lambda t: t.replace(tzinfo=UTC)
)


def ours(expr: str, after: datetime, count: int) -> list[datetime]:
    return fire_times(CronSchedule(cron=expr), after, limit=count)


@settings(max_examples=400, deadline=None)
@given(expressions(), starts)
def test_fire_times_agree_with_cronsim(expr: str, after: datetime) -> None:
    theirs = list(islice(CronSim(expr, after), 6))
    assert ours(expr, after, 6) == theirs


@settings(max_examples=300, deadline=None)
@given(expressions(), starts)
def test_latest_fire_time_agrees_with_cronsim(expr: str, before: datetime) -> None:
    expected = next(CronSim(expr, before, reverse=True))
    if expected == before:  # cronsim's reverse iteration includes the start itself
        expected = next(CronSim(expr, before - timedelta(microseconds=1), reverse=True))
    assert latest_fire_time(CronSchedule(cron=expr), before) == expected


@settings(max_examples=300, deadline=None)
@given(expressions(croniter_safe=True), starts)
def test_fire_times_agree_with_croniter_cron_bug(expr: str, after: datetime) -> None:
    it = croniter(expr, after, ret_type=datetime, implement_cron_bug=True)
    theirs = [it.get_next(datetime) for _ in range(6)]
    assert ours(expr, after, 6) == theirs


def firsts(expr: str, count: int = 6) -> list[str]:
    return [
        t.strftime("%a %Y-%m-%d %H:%M") for t in ours(expr, datetime(2026, 1, 1, tzinfo=UTC), count)
    ]


def test_a_star_day_field_means_both_day_fields_must_match() -> None:
    # */2 begins with "*": odd days of the month that are Saturdays (Vixie's rule).
    assert firsts("0 16 */2 * sat", 4) == [
        "Sat 2026-01-03 16:00",
        "Sat 2026-01-17 16:00",
        "Sat 2026-01-31 16:00",
        "Sat 2026-02-07 16:00",
    ]
    # Neither begins with "*": either may match.
    assert firsts("0 12 1-31/2 * sat", 4) == [
        "Thu 2026-01-01 12:00",
        "Sat 2026-01-03 12:00",
        "Mon 2026-01-05 12:00",
        "Wed 2026-01-07 12:00",
    ]
    assert "Sat 2026-01-10 12:00" in firsts("0 12 1-31/2 * sat", 8)  # an even Saturday


@pytest.mark.parametrize("dow", ["Sun-Sun", "0-0", "7-7", "sun", "7", "SUN-sun"])
def test_every_spelling_of_sunday(dow: str) -> None:
    assert {day[:3] for day in firsts(f"0 0 * * {dow}", 5)} == {"Sun"}


def test_weekday_range_through_seven_ends_on_sunday() -> None:
    assert [day[:3] for day in firsts("0 0 * * 5-7", 3)] == ["Fri", "Sat", "Sun"]


def test_february_30th_or_wednesday_fires_on_february_wednesdays() -> None:
    assert CronSchedule(cron="0 0 30 2 3").cron == "0 0 30 2 3"
    assert firsts("0 0 30 2 3", 5) == [
        "Wed 2026-02-04 00:00",
        "Wed 2026-02-11 00:00",
        "Wed 2026-02-18 00:00",
        "Wed 2026-02-25 00:00",
        "Wed 2027-02-03 00:00",
    ]


def test_last_day_of_month_works_with_both_day_rules() -> None:
    assert firsts("0 0 L 2 *", 2) == ["Sat 2026-02-28 00:00", "Sun 2027-02-28 00:00"]
    # "L" does not begin with "*": the 28th of February or any Friday of it.
    assert firsts("0 0 L 2 fri", 5)[-2:] == ["Fri 2026-02-27 00:00", "Sat 2026-02-28 00:00"]
    # With a "*"-prefixed day of week both must match: a February ending on a Sunday.
    assert firsts("0 0 L 2 */7", 1) == ["Sun 2027-02-28 00:00"]


@pytest.mark.parametrize(
    ("expr", "named"),
    [
        ("0 0 * * 5#2", "'#'"),
        ("0 0 * * 5L", "'L'"),
        ("0 0 LW * *", "'W'"),
        ("0 0 15W * *", "'W'"),
        ("0 0 ? * 1", "'?'"),
        ("H 0 * * *", "'H'"),
        ("0 0 * * 6-1", "runs backwards"),
        ("0 0 31 4,6 *", "can never fire"),
    ],
)
def test_extensions_and_impossible_expressions_are_refused_by_name(expr: str, named: str) -> None:
    with pytest.raises(CronSyntaxError, match=named):
        parse_cron(expr)


def test_a_day_skipped_by_a_time_zone_change_is_not_made_up() -> None:
    # Samoa moved across the date line: 2011-12-29 23:59 (-10) was followed by
    # 2011-12-31 00:00 (+14). There was no 30 December, and cron does not invent one.
    s = CronSchedule(cron="0 12 * * *", timezone="Pacific/Apia")
    got = fire_times(s, datetime(2011, 12, 28, tzinfo=UTC), limit=3)
    apia = ZoneInfo("Pacific/Apia")
    local = [t.astimezone(apia).strftime("%Y-%m-%d %H:%M") for t in got]
    assert local == ["2011-12-28 12:00", "2011-12-29 12:00", "2011-12-31 12:00"]
    # 2011-12-31 11:00 local: the newest fire before it is the 29th's.
    prev = latest_fire_time(s, datetime(2011, 12, 30, 21, tzinfo=UTC))
    assert prev is not None and prev.astimezone(apia).strftime("%d %H:%M") == "29 12:00"
