"""A day in the life of the centre (issue 24), through the secured API over a real database,
each post with its own login: a citizen reports a broken cover that a sensor has already
reported → the intake operator merges the two → the case, dispatched by policy, runs
overdue and the shift leader urges it → the department feeds back with a photo → the
inspector assigned verifies on site with a photo → the shift leader closes → the citizen
is called back. No one login can take every step, and the audit shows who took each."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from hub.cases.attachments import AttachmentKind
from hub.cases.workflow import Action
from hub.principals import AccessRole
from hub.rules.alarm_types import Severity
from hub.rules.signals import SignalAction
from hub.store.access import AccessStore
from hub.store.alarms import apply_signals
from hub.store.cases import file_due_alarms
from tests.api.access.access_fixtures import secured_hub
from tests.store.cases.case_fixtures import alarm_signal, register_device

pytestmark = pytest.mark.integration

JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256))


class Login:
    """One person's token: what they send, and the actor id the audit writes."""

    def __init__(self, access: AccessStore, name: str, role: AccessRole, **extra: Any) -> None:
        token, secret = access.create_token(name, role, **extra)
        self.headers = {"Authorization": f"Bearer {secret}"}
        self.actor = f"token:{token.id}:{name}"


def test_a_day_in_the_life_of_the_centre(database_url: str) -> None:
    register_device(database_url, "mh-1")  # a storm-water cover (01003) at the test grid
    with secured_hub(database_url) as hub, TestClient(hub.app) as client:
        store = hub.case_store
        centre = store.setup.policy.centre.model_copy(
            update={
                "photos_required": {
                    Action.FEEDBACK: frozenset({AttachmentKind.AFTER}),
                    Action.VERIFY_PASS: frozenset({AttachmentKind.VERIFY}),
                }
            }
        )
        store.setup = replace(
            store.setup, policy=store.setup.policy.model_copy(update={"centre": centre})
        )
        intake = Login(hub.access, "zhang-intake", AccessRole.INTAKE_OPERATOR)
        dispatcher = Login(hub.access, "wang-dispatch", AccessRole.DISPATCHER)
        leader = Login(hub.access, "chen-leader", AccessRole.SHIFT_LEADER)
        li = Login(hub.access, "li-inspector", AccessRole.INSPECTOR)
        zhao = Login(hub.access, "zhao-inspector", AccessRole.INSPECTOR)
        drainage = Login(hub.access, "drainage-crew", AccessRole.DEPARTMENT, department="drainage")
        desk = Login(hub.access, "one-desk", AccessRole.CENTRE)

        def step(who: Login, case_id: int, action: str, status: int = 200, **body: Any) -> Any:
            response = client.post(f"/cases/{case_id}/{action}", headers=who.headers, json=body)
            assert response.status_code == status, (action, response.text)
            return response.json()

        # 1. The cover's sensor reported a tilt a month ago: filed, registered and dispatched
        #    to drainage by policy; its handling limit has long passed.
        month_ago = datetime.now(UTC) - timedelta(days=30)
        with psycopg.connect(database_url) as conn:
            apply_signals(
                conn,
                [alarm_signal(SignalAction.RAISE, month_ago, severity=Severity.MAJOR)],
                month_ago,
            )
            (filed,) = file_due_alarms(conn, store.setup, month_ago + timedelta(minutes=1))
        assert filed.case is not None
        sensor_case = filed.case.id
        sensor_number = filed.case.case_number

        # 2. A citizen reports the same cover through Open311.
        posted = client.post(
            "/open311/v2/requests.json",
            data={
                "api_key": "key-311",
                "service_code": "01003",
                "lat": "32.05",
                "long": "118.78",
                "description": "北京东路井盖翘起",
                "phone": "13800000000",
                "first_name": "李",
            },
        )
        assert posted.status_code == 200, posted.text
        request_id = posted.json()[0]["service_request_id"]
        public = client.get("/cases", headers=intake.headers, params={"source": "open311"}).json()
        (citizen_case,) = (c["id"] for c in public if c["case_number"] == request_id)

        # 3. The intake operator merges the citizen's report into the sensor's case.
        step(dispatcher, citizen_case, "merge", 403, into=sensor_number)  # not a dispatcher's
        merged = step(intake, citizen_case, "merge", into=sensor_number)
        assert (merged["status"], merged["merged_into"]) == ("merged", sensor_number)
        (answer,) = client.get(f"/open311/v2/requests/{request_id}.json").json()
        assert answer["status"] == "open"
        assert answer["status_notes"].startswith(f"已合并至 {sensor_number}")

        # 4. The shift leader sees it overdue and urges it; the department is notified.
        board = client.get("/supervision", headers=leader.headers).json()
        assert sensor_case in [c["id"] for c in board["overdue"]]
        step(dispatcher, sensor_case, "urge", 403, note="超期")
        urged = step(leader, sensor_case, "urge", note="超期一个月，请立即处置")
        assert urged["urge_level"] == 1
        with psycopg.connect(database_url) as conn:
            notified = conn.execute(
                "SELECT body -> 'case' ->> 'department' FROM outbox"
                " WHERE case_id = %s AND event_type = 'case.urge'",
                (sensor_case,),
            ).fetchall()
        assert notified == [("drainage",)]

        # 5. The department accepts, and feeds back once a photo of the work is attached.
        step(drainage, sensor_case, "accept")
        step(drainage, sensor_case, "feedback", 409, note="已更换井盖")
        photo = client.post(
            f"/cases/{sensor_case}/attachments",
            headers={**drainage.headers, "Content-Type": "image/jpeg"},
            params={"kind": "after", "filename": "after.jpg"},
            content=JPEG,
        )
        assert photo.status_code == 201, photo.text
        step(drainage, sensor_case, "feedback", note="已更换井盖")

        # 6. Verification goes to inspector Li; Zhao may not do it; Li does, with a photo.
        step(intake, sensor_case, "send-for-verification", inspector=li.actor)
        tasks = client.get("/cases", headers=li.headers, params={"inspector": li.actor}).json()
        assert [c["id"] for c in tasks] == [sensor_case]
        step(zhao, sensor_case, "verify-pass", 403)
        on_site = client.post(
            f"/cases/{sensor_case}/attachments",
            headers={**li.headers, "Content-Type": "image/jpeg"},
            params={"kind": "verify"},
            content=JPEG,
        )
        assert on_site.status_code == 201
        step(li, sensor_case, "verify-pass")

        # 7. The shift leader closes; the citizen who reported is called back.
        step(intake, sensor_case, "close", 403)
        closed = step(leader, sensor_case, "close")
        assert (closed["status"], closed["callback_due"]) == ("closed", True)
        due = client.get("/cases", headers=intake.headers, params={"callback_due": "true"}).json()
        assert [c["id"] for c in due] == [sensor_case]
        called = step(intake, sensor_case, "callback", satisfaction="satisfied", note="满意")
        assert (called["callback_result"], called["callback_due"]) == ("satisfied", False)
        (answer,) = client.get(f"/open311/v2/requests/{request_id}.json").json()
        assert answer["status"] == "closed"

        # Who did what: each step by its post's own login.
        actors = {(e["action"], e["actor_id"]) for e in called["events"]}
        assert {
            ("urge", leader.actor),
            ("accept", drainage.actor),
            ("feedback", drainage.actor),
            ("send_for_verification", intake.actor),
            ("verify_pass", li.actor),
            ("close", leader.actor),
            ("callback", intake.actor),
        } <= actors
        assert [(a["kind"], a["uploaded_by"]) for a in called["attachments"]] == [
            ("after", drainage.actor),
            ("verify", li.actor),
        ]
        # One login cannot take every step: the one-desk centre login is no department.
        reported = client.post(
            "/cases",
            headers=desk.headers,
            json={"source": "hotline", "class_code": "01003", "lat": 32.05, "lon": 118.78},
        )
        assert reported.status_code == 201, reported.text
        spare = reported.json()
        step(desk, spare["id"], "register")
        step(desk, spare["id"], "dispatch", department="drainage")
        step(desk, spare["id"], "accept", 403)
        client.post(
            f"/cases/{spare['id']}/attachments",
            headers={**drainage.headers, "Content-Type": "image/jpeg"},
            params={"kind": "after"},
            content=JPEG,
        )
        step(drainage, spare["id"], "feedback", note="done")
        step(desk, spare["id"], "send-for-verification")
        step(desk, spare["id"], "verify-pass", 403)  # nobody verifies their own dispatch

        # The department sees its own figures, and only its own.
        now = datetime.now(UTC)
        figures = client.get(
            "/statistics",
            headers=drainage.headers,
            params={
                "level": "department",
                "start": (month_ago - timedelta(days=1)).isoformat(),
                "end": (now + timedelta(hours=1)).isoformat(),
            },
        ).json()
        assert figures["department"] == "drainage"
        (mine,) = figures["areas"]
        assert (mine["key"], mine["closed"], mine["called_back"]) == ("drainage", 1, 1)
        assert mine["satisfaction_rate"] == 1.0
        scores = client.get(
            "/evaluation",
            headers=drainage.headers,
            params={
                "start": (month_ago - timedelta(days=1)).isoformat(),
                "end": (now + timedelta(hours=1)).isoformat(),
            },
        ).json()
        assert [d["department"] for d in scores["departments"]] == ["drainage"]
