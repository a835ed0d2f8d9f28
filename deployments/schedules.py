"""Turn a one-line schedule preset into one native Prefect schedule for `prefect.yaml`, and check it.

The preset grammar (case-insensitive, spaces collapsed, `HH:MM` is a 24-hour time, UTC by default):

    every N minutes                    every 15 minutes, every 7 minutes, every 90 minutes, every minute
    every N hours [and M minutes]      every 2 hours, every 2 hours 30 minutes, every hour
    hourly [at :MM]                    hourly, hourly at :05 (also: every hour at minute 5)
    daily at HH:MM                     daily at 02:00 (also: every day at 02:00)
    every N days at HH:MM              every 3 days at 06:00
    weekdays at HH:MM                  weekdays at 08:30 (also: every weekday at 08:30)
    weekly on DAY[,DAY...] at HH:MM    weekly on mon,wed,fri at 09:00
    monthly on day D at HH:MM          monthly on day 15 at 02:00 (D from 1 to 28)
    monthly on last day at HH:MM       monthly on last day at 23:00
    monthly on last weekday at HH:MM   monthly on last weekday at 18:00
    cron EXPRESSION                    cron 0 2 * * *

Any preset may end with `in <IANA zone>` (`daily at 09:00 in Europe/Paris`): runs keep their wall-clock
time across daylight-saving changes. The native form is the exact one: `cron` where cron says it
(`L` for the last day of the month), `rrule` where it cannot (the last weekday of the month), and
`interval` with an `anchor_date` where a cron step would restart every hour or day (every 7 minutes,
every 90 minutes, every 3 days). Each schedule gets a `slug` derived from the preset (not from the
zone), so `prefect deploy` keeps its id when the schedule is edited.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from deployments.schedule_dates import schedule_dates

ScheduleDict = dict[str, Any]
"""One entry of a deployment's `schedules:` list in `prefect.yaml` (a decoded YAML mapping)."""

NativeSchedule = CronSchedule | IntervalSchedule | RRuleSchedule

ANCHOR_DAY = date(2026, 1, 1)
"""Intervals are phased from this day (at the preset's time, in its zone) so the YAML is stable."""

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRON_DAY_NUMBERS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
LAST_WEEKDAY_RRULE = "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1"

PRESET_FORMS = (
    "every N minutes",
    "every N hours [and M minutes]",
    "hourly at :MM",
    "daily at HH:MM",
    "every N days at HH:MM",
    "weekdays at HH:MM",
    "weekly on mon,wed,fri at HH:MM",
    "monthly on day D at HH:MM",
    "monthly on last day at HH:MM",
    "monthly on last weekday at HH:MM",
    "cron EXPRESSION",
)

# (field name, number of values, smallest value, what it restarts with) for cron's 5 fields + seconds.
CRON_FIELDS = (
    ("minute", 60, 0, "hour"),
    ("hour", 24, 0, "day"),
    ("day-of-month", 31, 1, "month"),
    ("month", 12, 1, "year"),
    ("day-of-week", 7, 0, "week"),
    ("second", 60, 0, "minute"),
)


class ScheduleEntry(BaseModel):
    """The keys `prefect deploy` accepts in one `schedules:` entry (mirrors Prefect's own config)."""

    model_config = ConfigDict(extra="forbid")

    cron: str | None = None
    interval: timedelta | None = None
    rrule: str | None = None
    anchor_date: str | None = None
    timezone: str | None = None
    day_or: bool | str | None = None
    active: bool | str | None = None
    parameters: dict[str, Any] = {}
    slug: str | None = None
    replaces: str | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleEntry:
        kinds = [name for name in ("cron", "interval", "rrule") if getattr(self, name) is not None]
        if len(kinds) != 1:
            raise ValueError(f"give exactly one of cron, interval or rrule, not {kinds or 'none'}")
        return self


# --- the preset grammar -------------------------------------------------------------------------------

Builder = Callable[[re.Match[str], str, ZoneInfo], ScheduleDict]


def parse_preset(preset: str) -> ScheduleDict:
    """Return the native Prefect schedule (`cron`/`rrule`/`interval`, `timezone`, `slug`) of a preset."""
    text = " ".join(preset.split())
    if not text:
        raise ValueError("The schedule preset is empty; write one such as 'daily at 02:00'.")
    body, zone_name = _split_zone(text)
    zone = _zone(zone_name, preset)
    for pattern, build in _RULES:
        match = pattern.fullmatch(body)
        if match:
            native = build(match, preset, zone)
            slug = native.pop("slug")
            return {**native, "timezone": zone_name, "slug": slug, "active": True}
    forms = "; ".join(PRESET_FORMS)
    raise ValueError(
        f"{preset!r} is not a schedule preset; write one of: {forms} (optionally followed by 'in <IANA zone>')."
    )


def _split_zone(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"(?P<body>.+?) in (?P<zone>[^ ]+)", text, re.IGNORECASE)
    if match is None:
        return text, "UTC"
    zone = match["zone"]
    return match["body"], "UTC" if zone.upper() == "UTC" else zone


def _zone(name: str, preset: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {name!r} is unknown in {preset!r}; write an IANA name such as Europe/Paris or UTC."
        ) from None


def _number(token: str, what: str, preset: str, *, low: int, high: int | None = None) -> int:
    if not token.isdigit():
        raise ValueError(f"{what} {token!r} is not a whole number in {preset!r}; write digits such as 5.")
    value = int(token)
    if high is None and value < low:
        raise ValueError(f"{what} {value} is too small in {preset!r}; write {low} or more.")
    if high is not None and not low <= value <= high:
        raise ValueError(
            f"{what} {value} is out of range {low}-{high} in {preset!r}; write one from {low} to {high}."
        )
    return value


def _time(token: str, preset: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", token)
    if match is None:
        raise ValueError(f"time {token!r} is not HH:MM in {preset!r}; write a 24-hour time such as 02:00.")
    hour = _number(match[1], "hour", preset, low=0, high=23)
    return time(hour, _number(match[2], "minute", preset, low=0, high=59))


def _hhmm(at: time) -> str:
    return f"{at.hour:02d}{at.minute:02d}"


def _interval(seconds: int, zone: ZoneInfo, at: time = time(0)) -> ScheduleDict:
    # An anchor with an offset: a naive one is read as UTC and shifts every run in another zone.
    anchor = datetime.combine(ANCHOR_DAY, at, tzinfo=zone)
    return {"interval": seconds, "anchor_date": anchor.isoformat()}


def _every_minutes(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    minutes = _number(match["n"], "number of minutes", preset, low=1) if match["n"] else 1
    if minutes % 60 == 0:
        return _hours_and_minutes(minutes // 60, 0, zone)
    slug = "every-minute" if minutes == 1 else f"every-{minutes}-minutes"
    if 60 % minutes == 0:  # the step divides the hour, so cron is exact
        return {"cron": "* * * * *" if minutes == 1 else f"*/{minutes} * * * *", "slug": slug}
    return {**_interval(minutes * 60, zone), "slug": slug}


def _every_hours(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    hours = _number(match["h"], "number of hours", preset, low=1) if match["h"] else 1
    minutes = _number(match["m"], "minute", preset, low=0, high=59) if match["m"] else 0
    return _hours_and_minutes(hours, minutes, zone)


def _hours_and_minutes(hours: int, minutes: int, zone: ZoneInfo) -> ScheduleDict:
    if minutes == 0 and 24 % hours == 0:  # the step divides the day, so cron is exact
        if hours == 1:
            return {"cron": "0 * * * *", "slug": "hourly"}
        return {"cron": f"0 */{hours} * * *", "slug": f"every-{hours}-hours"}
    slug = f"every-{hours}-hours" if minutes == 0 else f"every-{hours}h{minutes:02d}m"
    return {**_interval(hours * 3600 + minutes * 60, zone), "slug": slug}


def _hourly_at(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    minute = _number(match["m"] or match["m2"], "minute", preset, low=0, high=59)
    return {"cron": f"{minute} * * * *", "slug": f"hourly-at-{minute:02d}"}


def _daily(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    at = _time(match["t"], preset)
    return {"cron": f"{at.minute} {at.hour} * * *", "slug": f"daily-{_hhmm(at)}"}


def _every_days(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    days = _number(match["n"], "number of days", preset, low=1)
    at = _time(match["t"], preset)
    if days == 1:
        return {"cron": f"{at.minute} {at.hour} * * *", "slug": f"daily-{_hhmm(at)}"}
    # Whole-day intervals keep the anchor's wall-clock time across DST changes in Prefect.
    return {**_interval(days * 86400, zone, at), "slug": f"every-{days}-days-{_hhmm(at)}"}


def _weekdays(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    at = _time(match["t"], preset)
    return {"cron": f"{at.minute} {at.hour} * * 1-5", "slug": f"weekdays-{_hhmm(at)}"}


def _weekly(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    at = _time(match["t"], preset)
    days = {_weekday(name, preset) for name in re.split(r"[ ,]+(?:and )?", match["days"].strip(" ,"))}
    ordered = [day for day in WEEKDAYS if day in days]
    numbers = ",".join(str(n) for n in sorted(CRON_DAY_NUMBERS[day] for day in ordered))
    return {"cron": f"{at.minute} {at.hour} * * {numbers}", "slug": f"weekly-{'-'.join(ordered)}-{_hhmm(at)}"}


def _weekday(name: str, preset: str) -> str:
    short = name.lower()[:3]
    if short in WEEKDAYS and name.lower() in {short, *_FULL_DAY_NAMES}:
        return short
    raise ValueError(f"day {name!r} is not a weekday in {preset!r}; write days from: {', '.join(WEEKDAYS)}.")


_FULL_DAY_NAMES = frozenset(
    {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "tues", "thur", "thurs"}
)


def _monthly_day(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    day = _number(match["d"], "day", preset, low=1, high=31)
    if day > 28:
        raise ValueError(
            f"day {day} is missing from some months in {preset!r}, which would skip them; "
            "write 'monthly on last day at HH:MM' or a day from 1 to 28."
        )
    at = _time(match["t"], preset)
    return {"cron": f"{at.minute} {at.hour} {day} * *", "slug": f"monthly-day-{day}-{_hhmm(at)}"}


def _monthly_last_day(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    at = _time(match["t"], preset)
    return {"cron": f"{at.minute} {at.hour} L * *", "slug": f"monthly-last-day-{_hhmm(at)}"}


def _monthly_last_weekday(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    at = _time(match["t"], preset)
    # Cron has no `LW` in Prefect; BYMINUTE/BYSECOND are given, or they come from the rule's DTSTART.
    rule = f"{LAST_WEEKDAY_RRULE};BYHOUR={at.hour};BYMINUTE={at.minute};BYSECOND=0"
    return {"rrule": rule, "slug": f"monthly-last-weekday-{_hhmm(at)}"}


def _cron(match: re.Match[str], preset: str, zone: ZoneInfo) -> ScheduleDict:
    expression = match["expr"]
    try:
        CronSchedule(cron=expression)
    except ValidationError:
        raise ValueError(
            f"cron {expression!r} is not valid in Prefect in {preset!r}; write 5 fields "
            "(minute hour day-of-month month day-of-week), without H, R or W."
        ) from None
    slug = re.sub(r"[^a-z0-9]+", "-", expression.lower().replace("*", "x")).strip("-")
    return {"cron": expression, "slug": f"cron-{slug}"[:60]}


_TIME = r"at (?P<t>[^ ]+)"
_RULES: tuple[tuple[re.Pattern[str], Builder], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), build)
    for pattern, build in (
        (r"every (?:(?P<n>[^ ]+) minutes?|minute)", _every_minutes),
        (r"(?:hourly|every hour) at (?::(?P<m>[^ ]*)|minute (?P<m2>[^ ]+))", _hourly_at),
        (r"hourly|every (?:(?P<h>[^ ]+) hours?|hour)(?:,? (?:and )?(?P<m>[^ ]+) minutes?)?", _every_hours),
        (rf"(?:daily|every day) {_TIME}", _daily),
        (rf"every (?P<n>[^ ]+) days? {_TIME}", _every_days),
        (rf"(?:weekdays|every weekday) {_TIME}", _weekdays),
        (rf"weekly on (?P<days>.+?) {_TIME}", _weekly),
        (rf"monthly on (?:the )?last day {_TIME}", _monthly_last_day),
        (rf"monthly on (?:the )?last weekday {_TIME}", _monthly_last_weekday),
        (rf"monthly on day (?P<d>[^ ]+) {_TIME}", _monthly_day),
        (r"cron (?P<expr>.+)", _cron),
    )
)


# --- previews and checks --------------------------------------------------------------------------------


def native_schedule(schedule: ScheduleDict) -> NativeSchedule:
    """Return Prefect's own schedule object for a `prefect.yaml` schedule entry (raises on bad input)."""
    entry = ScheduleEntry.model_validate(schedule)
    zone = entry.timezone or "UTC"
    if entry.cron is not None:
        day_or = entry.day_or if isinstance(entry.day_or, bool) else True
        return CronSchedule(cron=entry.cron, timezone=zone, day_or=day_or)
    if entry.rrule is not None:
        return RRuleSchedule(rrule=entry.rrule, timezone=zone)
    assert entry.interval is not None  # the model requires exactly one kind
    if entry.anchor_date is None:
        return IntervalSchedule(interval=entry.interval, timezone=zone)
    anchor = datetime.fromisoformat(entry.anchor_date)
    return IntervalSchedule(interval=entry.interval, anchor_date=anchor, timezone=zone)


def next_runs(schedule: ScheduleDict, n: int = 5, after: datetime | None = None) -> list[datetime]:
    """Return the next `n` run times strictly after `after` (default: now), in the schedule's zone."""
    start = after or datetime.now(UTC)
    if start.tzinfo is None:
        raise ValueError(f"`after` {start.isoformat()} has no time zone; pass an aware datetime.")
    native = native_schedule(schedule)
    # Computed as the scheduler does (no API call); its start bound is inclusive.
    dates = schedule_dates(native, n=n + 1, start=start)
    zone = ZoneInfo(native.timezone or "UTC")
    return [datetime.fromtimestamp(d.timestamp(), zone) for d in dates if d > start][:n]


def schedule_problems(schedule: ScheduleDict) -> list[str]:
    """Return what keeps a `prefect.yaml` schedule entry from being native, stable and valid."""
    try:
        entry = ScheduleEntry.model_validate(schedule)
        native_schedule(schedule)
    except ValidationError as exc:
        return [f"{'.'.join(str(p) for p in e['loc']) or 'schedule'}: {e['msg']}" for e in exc.errors()]
    except ValueError as exc:
        return [str(exc)]
    problems = []
    if not entry.slug:
        problems.append(
            "no `slug`: each deploy would give the schedule a new id; add e.g. `slug: daily-0200`"
        )
    if entry.interval is not None:
        problems += _anchor_problems(entry.anchor_date)
    return problems


def _anchor_problems(anchor: str | None) -> list[str]:
    if anchor is None:
        return [
            "interval without `anchor_date`: runs would be phased from deploy time; add one with an offset"
        ]
    if datetime.fromisoformat(anchor).tzinfo is None:
        return [f"`anchor_date` {anchor!r} has no UTC offset, so Prefect reads it as UTC; add e.g. +01:00"]
    return []


def cron_warnings(expression: str) -> list[str]:
    """Return the traps of a cron expression that Prefect accepts or rejects surprisingly."""
    fields = expression.split()
    if expression.startswith("@"):
        return []
    warnings = []
    if len(fields) == 6:
        warnings.append(
            f"cron {expression!r} has 6 fields: Prefect reads the 6th ({fields[5]!r}) as seconds, "
            "not as a year; drop it to keep a 5-field cron."
        )
    for (name, size, low, cycle), field in zip(CRON_FIELDS, fields, strict=False):
        warnings += [
            f"{text} in cron {expression!r}" for text in _field_warnings(name, size, low, cycle, field)
        ]
    if len(fields) >= 5 and fields[2] not in {"*", "?"} and fields[4] not in {"*", "?"}:
        warnings.append(
            f"cron {expression!r} sets both day-of-month and day-of-week: Prefect runs on either day "
            "(day_or: true); add `day_or: false` to run only when both match."
        )
    return warnings


def _field_warnings(name: str, size: int, low: int, cycle: str, field: str) -> list[str]:
    warnings = []
    for part in field.upper().split(","):
        tokens = set(re.split(r"[-/#()]", part))
        if tokens & {"H", "R"}:
            warnings.append(f"{name} {part!r}: H (hashed) and R (random) are not supported; write numbers")
        if name == "day-of-month" and "W" in part:
            warnings.append(
                f"{name} {part!r}: W (nearest weekday, LW) is not supported; for the last weekday "
                f"use the preset 'monthly on last weekday at HH:MM' (rrule {LAST_WEEKDAY_RRULE})"
            )
        if name == "day-of-week" and ("#L" in part or re.fullmatch(r"[0-7]L|[A-Z]{3}L", part)):
            warnings.append(f"{name} {part!r}: `#L`/`5L` are not supported; write `L5` for the last Friday")
        warnings += _step_warnings(name, size, low, cycle, part)
    return warnings


def _step_warnings(name: str, size: int, low: int, cycle: str, part: str) -> list[str]:
    match = re.fullmatch(r"(\*|\d+)/(\d+)", part)
    if match is None or int(match[2]) == 0:
        return []
    step, first = int(match[2]), low if match[1] == "*" else int(match[1])
    last = first + (low + size - 1 - first) // step * step
    gap = first + size - last
    if gap == step:
        return []
    fix = (
        f"use the preset 'every {step} {name}s' (an interval)"
        if name in {"minute", "hour"}
        else "list the values"
    )
    return [
        f"{name} step {part!r} does not divide {size}: it restarts every {cycle} ({last} then {first}, "
        f"a gap of {gap} instead of {step}); for an even rhythm {fix}"
    ]
