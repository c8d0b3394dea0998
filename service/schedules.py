"""Deployment schedules: validation models and fire-time computation.

Everything in this module is pure: no I/O and no clock reads. Every function takes the
instant(s) it needs and returns aware UTC datetimes.

Cron schedules follow classic (Vixie) cron semantics: the fields and their day rule are
:mod:`service.cron`'s, which finds *naive local wall-clock times* in the schedule's timezone;
each wall time is then mapped to real instants here, with :mod:`zoneinfo` and PEP 495 ``fold``:

* A schedule is *wildcard* if its minute or hour field starts with ``*`` (``0 * * * *``,
  ``*/15 * * * *``, ``@hourly``); otherwise it is *fixed-time* (``30 2 * * *``, ``@daily``).
* Ambiguous wall time (clocks go back, the time happens twice): fixed-time fires once, at the
  first occurrence; wildcard fires at both occurrences, so ``0 * * * *`` fires every real hour.
* Nonexistent wall time (clocks go forward): fixed-time fires once at the first instant after
  the gap (Europe/Berlin 2026-03-29 02:30 -> 03:00 CEST); wildcard skips the slot.
* A change of the UTC offset by more than three hours (a zone moving across the date line,
  Pacific/Apia 2011-12-30) is not daylight saving: as Vixie cron treats such a clock jump,
  wall times it skips are not made up and wall times it repeats fire at each occurrence.
* Fire instants are deduplicated, so two wall times mapping to one instant fire once.

Interval schedules fire at ``anchor + k * interval`` (``k >= 0``) in real time; DST is
irrelevant to them.
"""

from __future__ import annotations

import hashlib
import json
import re
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
)
from pydantic_core import PydanticCustomError

from service.cron import CronExpr, CronSyntaxError, parse_cron

__all__ = [
    "MAX_INTERVAL_SECONDS",
    "CronSchedule",
    "IntervalSchedule",
    "Schedule",
    "fire_times",
    "latest_fire_time",
    "schedule_key",
]

MAX_INTERVAL_SECONDS = 366 * 24 * 3600
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Vixie cron's "@" shortcuts (minus @reboot, which has no fire times).
_CRON_ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Fields are separated by ASCII whitespace only.
_FIELD_RE = re.compile(r"[^ \t\n\r\f\v]+")
# Zone names that ZoneInfo may load but which mean "whatever the host is set to".
_HOST_DEPENDENT_ZONES = frozenset({"localtime", "posixrules"})
# Largest UTC-offset change Vixie cron treats as daylight saving (cron.c: a clock jump of
# more than three hours is a clock change, run only what matches the new time).
_MAX_DST_SHIFT = timedelta(hours=3)
# How far around an instant to look for an offset change when choosing where to start
# iterating wall-clock times (covers zones that moved across the date line).
_MAX_SHIFT = timedelta(hours=26)
_ONE_MINUTE = timedelta(minutes=1)
_ONE_MICROSECOND = timedelta(microseconds=1)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


class CronSchedule(BaseModel):
    """Fire whenever the local wall clock in ``timezone`` matches a 5-field cron expression."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["cron"] = "cron"
    cron: str = Field(
        description=(
            "Standard 5-field cron expression (minute hour day-of-month month day-of-week), "
            "or one of @hourly/@daily/@midnight/@weekly/@monthly/@yearly/@annually."
        ),
        examples=["0 9 * * 1-5"],
    )
    timezone: str = Field(
        default="UTC", description="IANA timezone name", examples=["Europe/Berlin"]
    )
    active: bool = True

    @field_validator("cron")
    @classmethod
    def _validate_cron(cls, value: str) -> str:
        return _normalize_cron(value)

    @field_validator("timezone")
    @classmethod
    def _validate_timezone(cls, value: str) -> str:
        _load_zone(value)
        return value


class IntervalSchedule(BaseModel):
    """Fire every ``interval_seconds`` of real time, starting at ``anchor``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["interval"] = "interval"
    interval_seconds: int = Field(strict=True, ge=1, le=MAX_INTERVAL_SECONDS)
    anchor: AwareDatetime | None = Field(
        default=None,
        description=(
            "First fire time (timezone-aware). Defaults to the Unix epoch (UTC), so the "
            "phase of the schedule does not depend on when it was deployed."
        ),
    )
    active: bool = True


def _schedule_kind(value: object) -> str | None:
    """``kind`` if given; else ``interval`` when ``interval_seconds`` is, else ``cron`` (the
    default the OpenAPI document shows)."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind is None:
            return "interval" if "interval_seconds" in value else "cron"
        return kind if isinstance(kind, str) else None
    return getattr(value, "kind", None)


Schedule = Annotated[
    Annotated[CronSchedule, Tag("cron")] | Annotated[IntervalSchedule, Tag("interval")],
    Discriminator(
        _schedule_kind,
        custom_error_type="schedule_kind",
        custom_error_message="kind must be 'cron' or 'interval'",
    ),
]


@lru_cache(maxsize=4096)  # valid expressions only: a raise is not cached
def _normalize_cron(value: str) -> str:
    fields = _FIELD_RE.findall(value)
    if len(fields) == 1 and fields[0].startswith("@"):
        alias = fields[0].lower()
        if alias == "@reboot":
            raise PydanticCustomError(
                "cron_unsupported", "@reboot is not supported: it has no fire times"
            )
        if alias not in _CRON_ALIASES:
            raise PydanticCustomError(
                "cron_syntax",
                "unknown cron alias {alias}; expected one of {known}",
                {"alias": repr(fields[0]), "known": ", ".join(_CRON_ALIASES)},
            )
        return alias
    normalized = " ".join(fields)
    try:
        parse_cron(normalized)  # also refuses expressions that can never fire ("0 0 30 2 *")
    except CronSyntaxError as exc:
        raise PydanticCustomError(
            "cron_syntax",
            "invalid cron expression {cron}: {reason}",
            {"cron": repr(normalized), "reason": str(exc)},
        ) from exc
    return normalized


@lru_cache(maxsize=1)
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _load_zone(name: str) -> ZoneInfo:
    unknown = PydanticCustomError(
        "unknown_timezone", "unknown timezone {timezone}", {"timezone": repr(name)}
    )
    if name in _HOST_DEPENDENT_ZONES:
        raise unknown
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise unknown from exc
    known = _known_zones()
    if known and name not in known:
        raise unknown
    return zone


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def fire_times(
    schedule: Schedule,
    after: datetime,
    *,
    until: datetime | None = None,
    limit: int,
) -> list[datetime]:
    """Fire instants strictly after ``after`` (and ``<= until``), at most ``limit`` of them.

    Returns aware UTC datetimes in strictly increasing order. ``after``/``until`` must be
    timezone-aware (any timezone). ``schedule.active`` is not consulted.
    """
    after_utc = _as_utc(after, "after")
    until_utc = None if until is None else _as_utc(until, "until")
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    if limit == 0 or (until_utc is not None and until_utc <= after_utc):
        return []
    if isinstance(schedule, IntervalSchedule):
        return _interval_fire_times(schedule, after_utc, until_utc, limit)
    return _cron_fire_times(
        _cron_plan(schedule.cron, schedule.timezone), after_utc, until_utc, limit
    )


def latest_fire_time(
    schedule: Schedule,
    before: datetime,
    *,
    not_before: datetime | None = None,
) -> datetime | None:
    """The newest fire instant ``< before`` (and ``>= not_before``), or None.

    Walks backwards from ``before``, so its cost does not depend on how long ago the
    previous fire was. ``schedule.active`` is not consulted.
    """
    before_utc = _as_utc(before, "before")
    floor = None if not_before is None else _as_utc(not_before, "not_before")
    if floor is not None and floor >= before_utc:
        return None
    if isinstance(schedule, IntervalSchedule):
        return _interval_latest(schedule, before_utc, floor)
    return _cron_latest(_cron_plan(schedule.cron, schedule.timezone), before_utc, floor)


def schedule_key(schedule: Schedule) -> str:
    """A 16-hex-char stable hash of the schedule's definition, ignoring ``active``.

    Equivalent spellings hash alike: cron aliases are expanded (``@daily`` ==
    ``0 0 * * *``), case and whitespace are normalised, and interval anchors are compared
    as UTC instants (a missing anchor equals an explicit Unix-epoch anchor).
    """
    canonical: dict[str, object]
    if isinstance(schedule, CronSchedule):
        canonical = {
            "kind": "cron",
            "cron": _expand_alias(schedule.cron).lower(),
            "timezone": schedule.timezone,
        }
    else:
        anchor = _EPOCH if schedule.anchor is None else schedule.anchor.astimezone(UTC)
        canonical = {
            "kind": "interval",
            "interval_seconds": schedule.interval_seconds,
            "anchor": anchor.isoformat(),
        }
    payload = json.dumps(["pushpool-schedule-v1", canonical], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# Interval schedules
# --------------------------------------------------------------------------------------


def _interval_fire_times(
    schedule: IntervalSchedule, after: datetime, until: datetime | None, limit: int
) -> list[datetime]:
    anchor = _EPOCH if schedule.anchor is None else schedule.anchor.astimezone(UTC)
    step = timedelta(seconds=schedule.interval_seconds)
    k = 0 if after < anchor else (after - anchor) // step + 1
    out: list[datetime] = []
    try:
        t = anchor + k * step
        while len(out) < limit and (until is None or t <= until):
            out.append(t)
            t += step
    except OverflowError:  # past datetime.max
        pass
    return out


def _interval_latest(
    schedule: IntervalSchedule, before: datetime, not_before: datetime | None
) -> datetime | None:
    anchor = _EPOCH if schedule.anchor is None else schedule.anchor.astimezone(UTC)
    if before <= anchor:
        return None
    step = timedelta(seconds=schedule.interval_seconds)
    t = anchor + ((before - anchor - _ONE_MICROSECOND) // step) * step
    if not_before is not None and t < not_before:
        return None
    return t


# --------------------------------------------------------------------------------------
# Cron schedules
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CronPlan:
    expr: CronExpr
    tz: ZoneInfo
    wildcard: bool


def _expand_alias(cron: str) -> str:
    return _CRON_ALIASES.get(cron.lower(), cron)


@lru_cache(maxsize=4096)
def _cron_plan(cron: str, timezone: str) -> _CronPlan:
    expr = parse_cron(_expand_alias(cron))
    return _CronPlan(expr=expr, tz=ZoneInfo(timezone), wildcard=expr.wildcard_time)


def _instants(wall: datetime, tz: tzinfo, wildcard: bool) -> tuple[datetime, ...]:
    """Real instants (UTC, ascending) at which the naive local wall time ``wall`` fires."""
    first = wall.replace(tzinfo=tz).astimezone(UTC)  # fold=0
    second = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if first == second:  # exists exactly once: the common case
        return (first,)
    if abs(second - first) > _MAX_DST_SHIFT:  # a clock change, not daylight saving
        return (first, second) if first < second else ()
    if first < second:  # ambiguous: clocks went back, the wall time happens twice
        return (first, second) if wildcard else (first,)
    # Nonexistent (in a gap): per PEP 495 fold=1 maps before the transition, fold=0 after.
    if wildcard:
        return ()
    return (_transition_between(second, first, tz),)


def _transition_between(lo: datetime, hi: datetime, tz: tzinfo) -> datetime:
    """First instant in ``(lo, hi]`` whose UTC offset differs from the offset at ``lo``."""
    offset = lo.astimezone(tz).utcoffset()
    lo_s, hi_s = 0, int((hi - lo).total_seconds())
    if (lo + timedelta(seconds=hi_s)).astimezone(tz).utcoffset() == offset:
        return hi  # not a single clean transition; the fold=0 mapping is still after the gap
    while hi_s - lo_s > 1:  # tz transitions fall on whole seconds
        mid = (lo_s + hi_s) // 2
        if (lo + timedelta(seconds=mid)).astimezone(tz).utcoffset() == offset:
            lo_s = mid
        else:
            hi_s = mid
    return lo + timedelta(seconds=hi_s)


def _offset(instant: datetime, tz: tzinfo) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _cron_fire_times(
    plan: _CronPlan, after: datetime, until: datetime | None, limit: int
) -> list[datetime]:
    tz = plan.tz
    local_after = after.astimezone(tz)
    # If the clocks go back shortly after `after`, later instants show wall times earlier than
    # `after`'s: start that much earlier (otherwise start right at `after`'s wall time).
    clocks_back = _offset(after, tz) - _offset(after + _MAX_SHIFT, tz)
    start = local_after.replace(tzinfo=None, second=0, microsecond=0)
    if clocks_back > timedelta(0):
        start -= clocks_back
    found: list[datetime] = []
    for wall in plan.expr.iter_after(start - _ONE_MINUTE):
        instants = _instants(wall, tz, plan.wildcard)
        if not instants:
            continue
        # The earliest instant of a wall time never decreases as the wall time increases, so
        # once it is past `until`, or at/after the limit-th result, no later wall time can
        # contribute. (Checked after merging, which saves one matcher step per call.)
        earliest = instants[0]
        if until is not None and earliest > until:
            break
        for instant in instants:
            if instant <= after or (until is not None and instant > until):
                continue
            pos = bisect_left(found, instant)
            if pos == len(found) or found[pos] != instant:
                found.insert(pos, instant)
        del found[limit:]
        if len(found) == limit and earliest >= found[-1]:
            break
    return found


def _cron_latest(plan: _CronPlan, before: datetime, not_before: datetime | None) -> datetime | None:
    tz = plan.tz
    local_before = before.astimezone(tz)
    # If the clocks went back shortly before `before`, earlier instants showed wall times later
    # than `before`'s: start that much later.
    clocks_back = _offset(before - _MAX_SHIFT, tz) - _offset(before, tz)
    start = local_before.replace(tzinfo=None, second=0, microsecond=0)
    if clocks_back > timedelta(0):
        start += clocks_back
    best: datetime | None = None
    for wall in plan.expr.iter_before(start + _ONE_MINUTE):
        instants = _instants(wall, tz, plan.wildcard)
        if not instants:
            continue
        # The latest instant of a wall time never increases as the wall time decreases, so
        # once it is below `not_before`, or at/before the best so far, no earlier wall time
        # can do better. (Checked after merging, which saves one matcher step per call.)
        latest = instants[-1]
        if not_before is not None and latest < not_before:
            break
        for instant in reversed(instants):
            if instant < before and (not_before is None or instant >= not_before):
                if best is None or instant > best:
                    best = instant
                break
        if best is not None and latest <= best:
            break
    return best


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got naive {value!r}")
    return value.astimezone(UTC)
