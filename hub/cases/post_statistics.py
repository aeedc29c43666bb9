"""The work of each post of the centre (岗位) over a period: who did what, and how much of it
ended a timed stage in time.

The posts are the workflow's roles a centre staffs (受理员 intake operator, 派遣员
dispatcher, 监督员 inspector, 值班长 shift leader), and each person at a post is counted
apart (the audit's actor id). An action counts as in time when it ended its stage (立案,
派遣, 处置, 核查) no later than the stage's deadline; actions that end no stage (urging, a
note, attaching evidence) count as work without a deadline. Pure: rows in, figures out.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hub.cases.workflow import Action, Role

POSTS: tuple[Role, ...] = (
    Role.INTAKE_OPERATOR,
    Role.DISPATCHER,
    Role.INSPECTOR,
    Role.SHIFT_LEADER,
)
"""The centre's posts, in the order of the seven steps."""


@dataclass(frozen=True, slots=True)
class PostEvent:
    """One action of the period as the figures need it."""

    role: Role
    actor_id: str | None
    action: Action
    at: datetime
    ended_stage: str | None = None
    ended_stage_due_at: datetime | None = None


@dataclass(slots=True)
class PostFigures:
    """One person's (or one post's, when the actor is unknown) work in the period."""

    role: Role
    actor_id: str | None
    actions: dict[Action, int] = field(default_factory=dict)
    stages_ended: int = 0
    stages_ended_in_time: int = 0

    @property
    def total(self) -> int:
        """Actions taken."""
        return sum(self.actions.values())

    @property
    def in_time_rate(self) -> float | None:
        """Share of the stages this person ended that ended by their deadline; None when
        they ended none (n/a, not 0)."""
        if self.stages_ended == 0:
            return None
        return self.stages_ended_in_time / self.stages_ended


def post_figures(events: Iterable[PostEvent], posts: Iterable[Role] = POSTS) -> list[PostFigures]:
    """Figures per (post, person), in the order of the posts, then by person."""
    wanted = tuple(posts)
    by_key: dict[tuple[Role, str | None], PostFigures] = {}
    for event in events:
        if event.role not in wanted:
            continue
        key = (event.role, event.actor_id)
        figures = by_key.get(key)
        if figures is None:
            figures = by_key[key] = PostFigures(event.role, event.actor_id)
        figures.actions[event.action] = figures.actions.get(event.action, 0) + 1
        if event.ended_stage is not None:
            figures.stages_ended += 1
            due = event.ended_stage_due_at
            if due is None or event.at <= due:
                figures.stages_ended_in_time += 1
    order: Mapping[Role, int] = {role: i for i, role in enumerate(wanted)}
    return sorted(by_key.values(), key=lambda f: (order[f.role], f.actor_id or ""))
