"""The centre's tools through the API over a real database: 案件合并 (merging duplicate
reports), 回访 (calling reporters back), attachments with their limits and the photo policy,
and statistics by area checked against figures counted by hand."""

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.cases.attachments import AttachmentKind
from hub.cases.workflow import Action, CaseStatus
from hub.store.cases import CaseStore
from tests.api.cases.conftest import OPEN311_KEY
from tests.api.cases.test_cases_api import act, case_in, report
from tests.store.cases.case_fixtures import GRID

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def post(client: TestClient, case_id: int, action: str, role: str, **body: Any) -> Any:
    return client.post(f"/cases/{case_id}/{action}", json={"actor_role": role, **body})


def upload(
    client: TestClient,
    case_id: int,
    data: bytes,
    *,
    kind: str = "after",
    content_type: str = "image/jpeg",
    role: str = "department",
) -> Any:
    return client.post(
        f"/cases/{case_id}/attachments",
        params={"kind": kind, "filename": "photo.jpg"},
        content=data,
        headers={"Content-Type": content_type, "X-Actor-Role": role, "X-Actor-Id": "dept-7"},
    )


# 案件合并


def test_a_duplicate_merges_into_the_surviving_case_both_ways(
    client: TestClient, database_url: str
) -> None:
    survivor = report(client, reporter={"phone": "13800000001"})
    duplicate = report(
        client, description="井盖又坏了", urgency="urgent", reporter={"phone": "13900000002"}
    )
    merged = act(client, duplicate["id"], "merge", "intake_operator", into=survivor["case_number"])
    assert (merged["status"], merged["merged_into"]) == ("merged", survivor["case_number"])
    assert merged["allowed_actions"] == []
    kept = client.get(f"/cases/{survivor['id']}").json()
    assert kept["merged_from"] == [duplicate["case_number"]]
    assert kept["urgency"] == "urgent"  # the urgent duplicate makes the survivor urgent
    last = kept["events"][-1]
    assert (last["action"], last["payload"]["merged_from"]) == (
        "attach_evidence",
        duplicate["case_number"],
    )
    (kept_report,) = kept["evidence"]["merged"]
    assert kept_report["description"] == "井盖又坏了"
    assert kept_report["evidence"]["reporter"] == {"phone": "13900000002"}

    # refusals: into itself, into an unknown or closed case, a merged case again
    again = post(client, survivor["id"], "merge", "intake_operator", into=survivor["id"])
    assert again.status_code == 409
    assert "into itself" in again.json()["detail"]
    unknown = post(client, survivor["id"], "merge", "intake_operator", into="nope")
    assert unknown.status_code == 409
    closed = case_in(client, CaseStatus.CLOSED)
    into_closed = post(client, survivor["id"], "merge", "intake_operator", into=str(closed))
    assert into_closed.status_code == 409
    assert "merge into an open case" in into_closed.json()["detail"]
    twice = post(client, duplicate["id"], "merge", "intake_operator", into=survivor["id"])
    assert twice.status_code == 409
    assert post(client, survivor["id"], "merge", "department", into="1").status_code == 403
    assert post(client, survivor["id"], "merge", "intake_operator").status_code == 422
    # merged cases count once
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM cases WHERE finished_at IS NULL AND id IN (%s, %s)",
            (survivor["id"], duplicate["id"]),
        ).fetchone()
    assert row == (1,)


def test_a_merged_public_report_answers_with_the_surviving_case(client: TestClient) -> None:
    survivor = case_in(client, CaseStatus.DISPATCHED)
    number = client.get(f"/cases/{survivor}").json()["case_number"]
    posted = client.post(
        "/open311/v2/requests.json",
        data={"api_key": OPEN311_KEY, "service_code": "01003", "lat": "32.05", "long": "118.78"},
    )
    request_id = posted.json()[0]["service_request_id"]
    public = client.get("/cases", params={"source": "open311"}).json()
    act(client, public[0]["id"], "merge", "intake_operator", into=number)
    (answer,) = client.get(f"/open311/v2/requests/{request_id}.json").json()
    assert answer["status"] == "open"
    assert answer["status_notes"].startswith(f"已合并至 {number} (merged): 已派遣")
    assert answer["agency_responsible"] == "排水管理处"
    assert answer["service_request_id"] == request_id


# 回访


def test_the_reporter_is_called_back_after_closing(client: TestClient) -> None:
    closed = case_in(client, CaseStatus.CLOSED)  # a hotline report
    detail = client.get(f"/cases/{closed}").json()
    assert (detail["callback_due"], detail["allowed_actions"]) == (True, ["callback"])
    due = client.get("/cases", params={"callback_due": "true"}).json()
    assert [c["id"] for c in due] == [closed]
    bad = post(client, closed, "callback", "intake_operator", satisfaction="great")
    assert bad.status_code == 422
    assert (
        post(client, closed, "callback", "dispatcher", satisfaction="satisfied").status_code == 403
    )
    done = act(
        client, closed, "callback", "intake_operator", satisfaction="unsatisfied", note="太慢"
    )
    assert (done["status"], done["callback_result"], done["callback_due"]) == (
        "closed",
        "unsatisfied",
        False,
    )
    assert done["events"][-1]["action"] == "callback"
    assert client.get("/cases", params={"callback_due": "true"}).json() == []
    open_case = case_in(client, CaseStatus.IN_PROGRESS)
    early = post(client, open_case, "callback", "intake_operator", satisfaction="satisfied")
    assert early.status_code == 409


# attachments


def test_attachments_are_checked_kept_and_served(client: TestClient) -> None:
    case_id = case_in(client, CaseStatus.IN_PROGRESS)
    created = upload(client, case_id, JPEG)
    assert created.status_code == 201, created.text
    photo = created.json()
    assert (photo["kind"], photo["content_type"], photo["size"]) == (
        "after",
        "image/jpeg",
        len(JPEG),
    )
    served = client.get(photo["url"])
    assert served.status_code == 200
    assert (served.content, served.headers["content-type"]) == (JPEG, "image/jpeg")
    assert (
        upload(client, case_id, PDF, kind="evidence", content_type="application/pdf").status_code
        == 201
    )
    listed = client.get(f"/cases/{case_id}/attachments").json()
    assert [a["kind"] for a in listed] == ["after", "evidence"]
    assert [a["id"] for a in client.get(f"/cases/{case_id}").json()["attachments"]] == [
        a["id"] for a in listed
    ]

    refusals = {
        "not a photo type": (upload(client, case_id, b"<script>", content_type="text/html"), 415),
        "bytes not of the type": (upload(client, case_id, PNG, content_type="image/jpeg"), 415),
        "empty": (upload(client, case_id, b""), 422),
        "unknown kind": (upload(client, case_id, JPEG, kind="selfie"), 422),
        "too large": (upload(client, case_id, JPEG + b"\x00" * 1_000 * 1024), 413),
        "no case": (upload(client, 999_999, JPEG), 404),
    }
    for why, (response, code) in refusals.items():
        assert response.status_code == code, (why, response.text)
    assert client.get(f"/cases/{case_id}/attachments/999999").status_code == 404
    assert len(client.get(f"/cases/{case_id}/attachments").json()) == 2


@pytest.fixture
def photo_policy(client: TestClient) -> Iterator[CaseStore]:
    """The client's case store with photos required at 反馈 (after) and 核查 (verify)."""
    store: CaseStore = client.app.state.case_store  # type: ignore[attr-defined]
    before = store.setup
    centre = before.policy.centre.model_copy(
        update={
            "photos_required": {
                Action.FEEDBACK: frozenset({AttachmentKind.AFTER}),
                Action.VERIFY_PASS: frozenset({AttachmentKind.VERIFY}),
            }
        }
    )
    store.setup = replace(before, policy=before.policy.model_copy(update={"centre": centre}))
    yield store
    store.setup = before


def test_the_photo_policy_holds_feedback_and_verification(
    client: TestClient, photo_policy: CaseStore
) -> None:
    case_id = case_in(client, CaseStatus.IN_PROGRESS)
    upload(client, case_id, JPEG, kind="before")
    missing = post(client, case_id, "feedback", "department", note="done")
    assert missing.status_code == 409
    assert "needs an attachment of kind after" in missing.json()["detail"]
    assert upload(client, case_id, JPEG, kind="after").status_code == 201
    act(client, case_id, "feedback", "department", note="done")
    act(client, case_id, "send-for-verification", "intake_operator")
    assert post(client, case_id, "verify-pass", "inspector").status_code == 409
    upload(client, case_id, JPEG, kind="verify", role="inspector")
    assert act(client, case_id, "verify-pass", "inspector")["status"] == "verified"


# statistics by area


def test_statistics_by_grid_street_and_department_match_a_hand_count(
    client: TestClient, database_url: str
) -> None:
    other_grid = GRID[:12] + "009"  # same community
    other_street = GRID[:6] + "002001001"
    closed = case_in(client, CaseStatus.CLOSED)
    act(client, closed, "callback", "intake_operator", satisfaction="satisfied")
    dispatched = case_in(client, CaseStatus.DISPATCHED)
    int(report(client)["id"])  # reported, never registered
    elsewhere = int(report(client, grid_code=other_grid, class_code="01037")["id"])
    act(client, elsewhere, "register", "intake_operator")
    far = int(report(client, grid_code=other_street)["id"])
    act(client, far, "reject", "intake_operator", note="not a city matter")
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:  # the dispatched one ran past its deadlines
        conn.execute(
            "UPDATE cases SET state = jsonb_set(jsonb_set(state, '{dispatched_at}',"
            " to_jsonb(%s::text)), '{first_dispatched_at}', to_jsonb(%s::text)) WHERE id = %s",
            (
                (now - timedelta(days=40)).isoformat(),
                (now - timedelta(days=40)).isoformat(),
                dispatched,
            ),
        )
    params = {
        "start": (now - timedelta(days=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
        "as_of": (now + timedelta(minutes=30)).isoformat(),
    }
    grids = client.get("/statistics", params=params).json()
    by_key = {a["key"]: a for a in grids["areas"]}
    assert list(by_key) == [GRID, other_grid, other_street]  # most reported first
    mine = by_key[GRID]
    # reported 3 here; registered 2 (closed, dispatched); due = closed 1 + overdue open 1
    assert (mine["reported"], mine["registered"], mine["due"], mine["closed"]) == (3, 2, 2, 1)
    assert mine["closure_rate"] == 0.5  # 结案率 1 / 2
    assert mine["registration_rate"] == pytest.approx(2 / 3)  # 立案率
    # handled: the closed one; overdue unhandled: the dispatched one (按期处置率 1 / 2)
    assert (mine["handled"], mine["due_for_handling"]) == (1, 2)
    assert mine["on_time_handling_rate"] == 0.5
    assert (mine["called_back"], mine["satisfaction_rate"]) == (1, 1.0)
    assert mine["top_classes"] == [["01003", 3]]
    assert by_key[other_grid]["top_classes"] == [["01037", 1]]
    assert by_key[other_street]["registration_rate"] == 0.0
    assert by_key[other_street]["closure_rate"] is None  # n/a: nothing due
    assert [h["key"] for h in grids["hot_spots"]][:1] == [GRID]

    streets = client.get("/statistics", params={**params, "level": "street"}).json()
    assert {a["key"]: a["reported"] for a in streets["areas"]} == {
        GRID[:9]: 4,
        other_street[:9]: 1,
    }
    community = client.get("/statistics", params={**params, "level": "community"}).json()
    assert community["areas"][0]["key"] == GRID[:12]
    assert community["areas"][0]["registered"] == 3
    departments = client.get("/statistics", params={**params, "level": "department"}).json()
    drainage = next(a for a in departments["areas"] if a["key"] == "drainage")
    assert (drainage["name"], drainage["closed"], drainage["due"]) == ("排水管理处", 1, 2)
    assert client.get("/statistics", params={**params, "level": "planet"}).status_code == 422
    assert (
        client.get("/statistics", params={"start": "2026-01-02", "end": "2026-01-01"}).status_code
        == 422
    )


def test_statistics_without_dates_count_this_month_so_far_in_the_citys_days(
    client: TestClient,
) -> None:
    # Whatever the hour here (in UTC, Shanghai's day starts at 16:00): a case reported now
    # counts, and the period starts on the 1st of the city's month.
    report(client)
    figures = client.get("/statistics").json()
    assert sum(a["reported"] for a in figures["areas"]) == 1
    start = datetime.fromisoformat(figures["start"]).astimezone(ZoneInfo("Asia/Shanghai"))
    assert (start.day, start.hour, start.minute) == (1, 0, 0)
    assert datetime.fromisoformat(figures["end"]) <= datetime.now(UTC)
