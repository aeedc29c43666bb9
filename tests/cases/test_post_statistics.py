"""Statistics by post as a pure count."""

from datetime import UTC, datetime, timedelta

from hub.cases.post_statistics import PostEvent, post_figures
from hub.cases.workflow import Action, Role

T0 = datetime(2026, 3, 16, 1, 0, tzinfo=UTC)


def test_only_centre_posts_count_and_work_without_a_deadline_has_no_rate() -> None:
    due = T0 + timedelta(hours=1)
    events = [
        PostEvent(Role.SHIFT_LEADER, "sl", Action.URGE, T0),
        PostEvent(Role.INSPECTOR, "in", Action.COMPLETE_CHECK, T0, "verify", due),
        PostEvent(Role.INSPECTOR, "in", Action.COMPLETE_CHECK, due, "verify", due),  # at due
        PostEvent(Role.DEPARTMENT, "roads", Action.FEEDBACK, T0, "handle", due),
        PostEvent(Role.SYSTEM, None, Action.REGISTER, T0, "register", due),
    ]
    figures = post_figures(events)
    assert [(f.role, f.total, f.stages_ended, f.in_time_rate) for f in figures] == [
        (Role.INSPECTOR, 2, 2, 1.0),
        (Role.SHIFT_LEADER, 1, 0, None),
    ]
