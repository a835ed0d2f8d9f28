"""The run times Prefect's scheduler gives a schedule, computed the way it computes them.

`python -m deployments schedule` shows the next runs of a preset. The exact answer is the scheduler's
own `get_dates` in `prefect.server.schemas.schedules`, but importing it loads Prefect's server package
(the import a `--help` or a `schedule` must not pay for). This module follows that code's path for
Python < 3.13 (the project's interpreters) step by step: pendulum for intervals, croniter on naive
local time shifted by pytz for cron, dateutil's rrule localized to the zone for rrules. A parity test
(tests/unit/test_schedule_dates.py) compares it with the server's code over every preset and the
daylight-saving days of several zones; when Prefect changes its scheduler, that test says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import dateutil.rrule
import dateutil.tz
import pendulum
import pytz
from prefect._vendor.croniter.croniter import croniter
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule

MAX_ITERATIONS = 1000
"""The scheduler checks at most this many candidate dates after the start (as Prefect does)."""

RRULE_ANCHOR_DATE = date(2020, 1, 1)
"""The DTSTART Prefect gives an rrule without one."""


def schedule_dates(
    schedule: CronSchedule | IntervalSchedule | RRuleSchedule, n: int, start: datetime
) -> list[datetime]:
    """Return the first `n` run times at or after `start` (aware), sorted, in the schedule's zone."""
    if start.tzinfo is None:
        raise ValueError(f"start {start.isoformat()} has no time zone; pass an aware datetime.")
    zone = schedule.timezone or "UTC"
    local_start = pendulum.instance(start).in_tz(zone)
    if isinstance(schedule, IntervalSchedule):
        found = _interval_dates(schedule, zone, local_start)
    elif isinstance(schedule, CronSchedule):
        found = _cron_dates(schedule, zone, local_start)
    else:
        found = _rrule_dates(schedule, zone, local_start)
    return sorted(_first_distinct(found, n))


def _first_distinct(candidates: Iterator[datetime], n: int) -> list[datetime]:
    # Daylight-saving changes can yield one instant twice; the scheduler keeps it once and gives up
    # after MAX_ITERATIONS candidates.
    dates: list[datetime] = []
    for counter, candidate in enumerate(candidates):
        if candidate not in dates:
            dates.append(candidate)
        if len(dates) >= n or counter > MAX_ITERATIONS:
            break
    return dates


def _interval_dates(schedule: IntervalSchedule, zone: str, start: pendulum.DateTime) -> Iterator[datetime]:
    anchor = pendulum.instance(schedule.anchor_date).in_tz(zone)
    step = schedule.interval.total_seconds()
    # Jump to the last anchor multiple before the start, then step: whole days as calendar days (a
    # daily run keeps its wall-clock time across DST), the rest as elapsed seconds.
    next_date = anchor.add(seconds=step * int((start - anchor).total_seconds() / step))
    days = schedule.interval.days
    seconds = step - days * 24 * 60 * 60
    while next_date < start:
        next_date = next_date.add(days=days, seconds=seconds)
    while True:
        yield next_date
        next_date = next_date.add(days=days, seconds=seconds)


def _cron_dates(schedule: CronSchedule, zone: str, start: pendulum.DateTime) -> Iterator[datetime]:
    # One second back so a start that matches is returned; a fraction of a second rounds up.
    start = start - timedelta(seconds=1)
    if start.microsecond > 0:
        start += timedelta(seconds=1)
    naive_start = start.naive()
    # croniter's DST handling is wrong around the change: it walks naive local time, and each
    # step's delta is added to the start localized with pytz (the only library croniter agrees with).
    wall_clock = datetime(*naive_start.timetuple()[:6], microsecond=naive_start.microsecond)
    localized_start = pytz.timezone(zone).localize(wall_clock)
    cron = croniter(schedule.cron, naive_start, day_or=schedule.day_or)  # type: ignore[no-untyped-call]
    while True:
        delta = cron.get_next(datetime) - naive_start  # type: ignore[no-untyped-call]
        yield pendulum.instance(localized_start + delta)


def _rrule_dates(schedule: RRuleSchedule, zone: str, start: pendulum.DateTime) -> Iterator[datetime]:
    rule = dateutil.rrule.rrulestr(schedule.rrule, dtstart=RRULE_ANCHOR_DATE, cache=True)
    if not isinstance(rule, dateutil.rrule.rrule):
        raise ValueError(f"rrule {schedule.rrule!r} is a rule set; write one RRULE line.")
    tz = dateutil.tz.gettz(zone)
    localized = {"dtstart": rule._dtstart.replace(tzinfo=tz)}
    if rule._until:
        localized["until"] = rule._until.replace(tzinfo=tz)
    for next_date in rule.replace(**localized).xafter(start, count=None, inc=True):
        yield pendulum.instance(next_date).astimezone(ZoneInfo(zone))
