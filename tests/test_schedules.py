from __future__ import annotations

import math
import warnings

import pytest

from tempscale_index.schedules import (
    DEFAULT_QUERY_SCHEDULE,
    CallableSchedule,
    ConstantSchedule,
    LogLinearSchedule,
    PiecewiseSchedule,
    Schedule,
    as_schedule,
)


def tau_for_length(num_tokens: int) -> float:
    """Importable user function for the callable-schedule round trip."""
    return 1.0 if num_tokens < 100 else 0.9


def test_loglinear_interpolates_in_log_length_and_clips() -> None:
    schedule = LogLinearSchedule(short_tokens=64, short_tau=1.0, long_tokens=256, long_tau=0.8)
    assert schedule.tau(1) == 1.0 and schedule.tau(64) == 1.0
    assert schedule.tau(128) == pytest.approx(0.9)  # halfway in log2 between 64 and 256
    assert schedule.tau(256) == pytest.approx(0.8) and schedule.tau(10_000) == pytest.approx(0.8)
    assert schedule.is_non_increasing()


def test_piecewise_buckets_are_inclusive_of_their_upper_bound() -> None:
    schedule = PiecewiseSchedule(boundaries=[64, 128], taus_by_bucket=[1.0, 0.9, 0.8])
    assert [schedule.tau(n) for n in (1, 64, 65, 128, 129, 5000)] == [1.0, 1.0, 0.9, 0.9, 0.8, 0.8]


@pytest.mark.parametrize(
    "schedule",
    [
        ConstantSchedule(0.8),
        LogLinearSchedule(32, 1.0, 512, 0.7),
        PiecewiseSchedule([100], [0.95, 0.85]),
        CallableSchedule("tests.test_schedules:tau_for_length"),
        DEFAULT_QUERY_SCHEDULE,
    ],
)
def test_dict_round_trip(schedule: Schedule) -> None:
    restored = Schedule.from_dict(schedule.to_dict())
    assert restored == schedule
    assert [restored.tau(n) for n in (1, 50, 150, 600)] == [schedule.tau(n) for n in (1, 50, 150, 600)]


def test_defaults_are_non_increasing_and_within_range() -> None:
    for schedule in (DEFAULT_QUERY_SCHEDULE,):
        assert schedule.is_non_increasing()
        assert all(0 < tau <= 1 for tau in schedule.taus([1, 16, 64, 256, 512, 8192]))


def test_rising_schedule_is_allowed_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="higher τ to longer texts"):
        schedule = LogLinearSchedule(64, 0.8, 256, 1.0)
    assert schedule.tau(256) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LogLinearSchedule(64, 1.0, 256, 0.8)  # the usual direction does not warn


def test_function_object_schedule_works_but_cannot_be_serialised() -> None:
    schedule = CallableSchedule(lambda n: 0.9)
    assert schedule.taus([10, 20]) == [0.9, 0.9]
    with pytest.raises(ValueError, match="import path"):
        schedule.to_dict()


def test_callable_returning_bad_tau_is_caught() -> None:
    with pytest.raises(ValueError, match="positive finite"):
        CallableSchedule(lambda n: -1.0).taus([10])


@pytest.mark.parametrize("bad", [0, -0.1, math.nan, math.inf, "0.8", True])
def test_bad_constant_tau_names_the_problem(bad) -> None:
    with pytest.raises((ValueError, TypeError), match="document_temperature"):
        as_schedule(bad, "document_temperature")


def test_as_schedule_accepts_floats_dicts_and_schedules() -> None:
    assert as_schedule(0.8) == ConstantSchedule(0.8)
    assert as_schedule({"type": "constant", "value": 0.7}) == ConstantSchedule(0.7)
    schedule = PiecewiseSchedule([10], [1.0, 0.9])
    assert as_schedule(schedule) is schedule
    with pytest.raises(ValueError, match="unknown schedule type"):
        as_schedule({"type": "cosine"})
    with pytest.raises(ValueError, match="bad parameters"):
        as_schedule({"type": "constant", "tau": 0.8})


def test_invalid_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match="short_tokens < long_tokens"):
        LogLinearSchedule(256, 1.0, 64, 0.8)
    with pytest.raises(ValueError, match="one τ per bucket"):
        PiecewiseSchedule([64], [1.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        PiecewiseSchedule([64, 64], [1.0, 0.9, 0.8])


def test_tau_above_one_is_accepted_with_one_warning_per_argument(monkeypatch, caplog) -> None:
    """A typo in a second option (--query-temperature 9 after --document-tau 8) is warned about too."""
    import tempscale_index.schedules as schedules

    monkeypatch.setattr(schedules, "_warned_tau_above_one", set())
    with caplog.at_level("WARNING", logger="tempscale_index.schedules"):
        ConstantSchedule(0.8)
        assert not caplog.records  # τ in (0, 1]: silent
        assert ConstantSchedule(1.25).tau(10) == 1.25
        ConstantSchedule(1.5)  # the same argument again: already warned
        as_schedule(8.0, "--document-tau")
        as_schedule(9.0, "--query-temperature")
        as_schedule(8.0, "--document-tau")
    logged = [record.getMessage() for record in caplog.records if "above 1" in record.getMessage()]
    assert len(logged) == 3 and "1.25" in logged[0] and "--document-tau" in logged[1]
    assert "--query-temperature = 9" in logged[2]
