"""Case endpoints: list and filter, detail, reports by people, one POST per workflow action.

Behind `secure_app` the actor is the authenticated principal, acting in the workflow role
its access role holds (`actor_role` in the body may pick one of them), and the department
role sees and acts on its own department's cases only. An app built without it takes the
role from the body (`actor_role`) or `X-Actor-Role`, the actor from `actor_id` or
`X-Actor-Id`. An action
the case's status does not allow is 409 with the allowed actions named; a role that may
not take it is 403; bad input is 422; a stale `expected_version` is 409.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from hub.api import cases_attachments, cases_centre
from hub.api.access import case_actor, case_department_scope, check_case_scope
from hub.api.cases_models import (
    PERSON_SOURCES,
    ActionIn,
    ActorHeader,
    CaseDetailOut,
    CaseOut,
    CaseReportIn,
    CaseStoreDep,
    RoleHeader,
    case_detail,
    case_out,
    get_case_store,
    role_of,
)
from hub.api.schemas import Instant, Int64, Offset
from hub.cases.attachments import MissingAttachmentError
from hub.cases.calendar import Light
from hub.cases.classification import ClassificationError
from hub.cases.intake import IntakeError, PersonReport
from hub.cases.steps import DutyRefusedError, StepPreconditionError
from hub.cases.workflow import (
    Action,
    CaseSource,
    CaseStatus,
    WorkflowError,
)
from hub.store.cases import (
    CaseConflictError,
    CaseFilter,
    CaseNotFoundError,
    IllegalTransitionError,
    MergeRefusedError,
    RoleRefusedError,
)

router = APIRouter(tags=["cases"])


@router.get("/cases", response_model=list[CaseOut])
def list_cases(
    request: Request,
    store: CaseStoreDep,
    status_: Annotated[
        list[CaseStatus] | None, Query(alias="status", description="repeat for several")
    ] = None,
    open_only: Annotated[
        bool, Query(alias="open", description="not closed/rejected/voided")
    ] = False,
    class_code: Annotated[str | None, Query(pattern=r"^\d{5}$")] = None,
    department: str | None = None,
    area: Annotated[
        str | None, Query(pattern=r"^\d{1,15}$", description="unit-grid code prefix")
    ] = None,
    source: CaseSource | None = None,
    overdue: bool | None = None,
    light: Light | None = None,
    alarm_id: Int64 | None = None,
    inspector: Annotated[
        str | None, Query(description="open on-site tasks (核实/核查) assigned to this inspector")
    ] = None,
    callback_due: Annotated[
        bool, Query(description="closed public reports whose reporter awaits 回访")
    ] = False,
    since: Annotated[Instant | None, Query(description="reported at or after")] = None,
    until: Annotated[Instant | None, Query(description="reported before")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[CaseOut]:
    """Cases, newest first, filtered by status, class, department, area, light and overdue."""
    scope = case_department_scope(request)
    if scope is not None:  # the department role sees its own department's cases only
        if department not in (None, scope):
            return []
        department = scope
    now = datetime.now(UTC)
    records = store.search(
        CaseFilter(
            statuses=status_ or (),
            class_code=class_code,
            department=department,
            area=area,
            source=source,
            overdue=overdue,
            light=light,
            alarm_id=alarm_id,
            inspector=inspector,
            callback_due_from=(
                tuple(store.setup.policy.centre.callback_sources) if callback_due else ()
            ),
            open_only=open_only,
            reported_since=since,
            reported_until=until,
            limit=limit,
            offset=offset,
        ),
        now,
    )
    return [CaseOut.model_validate(case_out(store, r, now)) for r in records]


@router.post("/cases", response_model=CaseDetailOut, status_code=status.HTTP_201_CREATED)
def report_case(
    request: Request,
    store: CaseStoreDep,
    body: CaseReportIn,
    x_actor_role: RoleHeader = None,
    x_actor_id: ActorHeader = None,
) -> CaseDetailOut:
    """Open a case from a person's report (hotline, inspector, video, superior)."""
    if body.source not in PERSON_SOURCES:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"source must be one of {sorted(s.value for s in PERSON_SOURCES)}; sensor cases "
            "come from alarms and public reports through /open311/v2",
        )
    acting = case_actor(request, store.setup.workflow, Action.REPORT, body.actor_role)
    role, actor_id = acting or (
        role_of(body.actor_role, x_actor_role),
        body.actor_id or x_actor_id,
    )
    now = datetime.now(UTC)
    try:
        record = store.report(
            PersonReport(
                source=body.source,
                class_code=body.class_code,
                class_kind=body.class_kind,
                actor_role=role,
                description=body.description,
                lat=body.lat,
                lon=body.lon,
                address=body.address,
                grid_code=body.grid_code,
                urgency=body.urgency,
                actor_id=actor_id,
                reporter=body.reporter,
                evidence=body.evidence,
            ),
            now,
        )
    except (IntakeError, ClassificationError) as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
    except WorkflowError as err:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from err
    return case_detail(store, record, now)


@router.get("/cases/{case_id}", response_model=CaseDetailOut)
def get_case(request: Request, store: CaseStoreDep, case_id: Int64) -> CaseDetailOut:
    """A case with its evidence, event log, current stage clock and allowed actions."""
    record = store.get(case_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no case with id {case_id}")
    check_case_scope(request, record.state.department, case_id)
    return case_detail(store, record, datetime.now(UTC))


def _action_endpoint(action: Action) -> Callable[..., CaseDetailOut]:
    def endpoint(
        request: Request,
        store: CaseStoreDep,
        case_id: Int64,
        body: ActionIn | None = None,
        x_actor_role: RoleHeader = None,
        x_actor_id: ActorHeader = None,
    ) -> CaseDetailOut:
        given = body or ActionIn()
        acting = case_actor(request, store.setup.workflow, action, given.actor_role)
        role, actor_id = acting or (
            role_of(given.actor_role, x_actor_role),
            given.actor_id or x_actor_id,
        )
        if case_department_scope(request) is not None:
            current = store.get(case_id)
            check_case_scope(request, current.state.department if current else None, case_id)
        now = datetime.now(UTC)
        try:
            record = store.act(
                case_id,
                action,
                role,
                now,
                given.payload(),
                actor_id=actor_id,
                expected_version=given.expected_version,
            )
        except CaseNotFoundError as err:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from err
        except (
            IllegalTransitionError,
            StepPreconditionError,
            CaseConflictError,
            MergeRefusedError,
            MissingAttachmentError,
        ) as err:
            raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err
        except (RoleRefusedError, DutyRefusedError) as err:
            raise HTTPException(status.HTTP_403_FORBIDDEN, str(err)) from err
        except (WorkflowError, ClassificationError) as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(err)) from err
        return case_detail(store, record, now)

    endpoint.__name__ = f"case_{action.value}"
    endpoint.__doc__ = f"Take the workflow action {action.value} on a case."
    return endpoint


for _action in Action:
    if _action is Action.REPORT:
        continue
    router.add_api_route(
        f"/cases/{{case_id}}/{_action.value.replace('_', '-')}",
        _action_endpoint(_action),
        methods=["POST"],
        response_model=CaseDetailOut,
        summary=f"{_action.value.replace('_', ' ')} a case",
    )


router.include_router(cases_centre.router)
router.include_router(cases_attachments.router)

__all__ = ["CaseStoreDep", "get_case_store", "router"]
