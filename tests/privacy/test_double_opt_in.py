"""Double opt-in on Temporal's time-skipping server: a marketing grant becomes a request, the
journey emails a signed link through the real SMTP peer, following it records the grant."""

from __future__ import annotations

import re
import uuid

import httpx
from journeyman.channels.testing.peers import SmtpPeer
from journeyman.engine.activities.journey_activities import JourneyActivities
from journeyman.engine.api import create_app, serve_in_background
from journeyman.engine.contracts import EVENT_SIGNAL, JourneyEvent, JourneyInput, JourneyResult
from journeyman.engine.delivery.service import Deliverer
from journeyman.engine.privacy import ConsentActivities, ConsentUpdate, change_consent
from journeyman.engine.profiles import get_profile
from journeyman.workflows.double_opt_in import DoubleOptIn
from temporalio.worker import Worker

from tests.delivery.delivery_testkit import add_member, email_channel, make_settings, project


async def test_double_opt_in_confirms_by_signed_link(temporal_env, store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path)
    settings.journeys = {"double_opt_in": {"enabled": True}}
    member = await add_member(store, settings, phone=None)
    outcome = await change_consent(
        store,
        member,
        ConsentUpdate.model_validate(
            {"changes": [{"channel": "email", "granted": True}], "source": "signup_form"}
        ),
        settings=settings,
    )
    assert [o.status for o in outcome] == ["confirmation_requested"]
    requested = [
        e
        for e in await store.read_stream(f"member-{member}")
        if e.type.startswith("member.consent")
    ]
    assert [e.type for e in requested] == ["member.consent_requested"]
    await project(store, settings)
    profile = await get_profile(store.pool, member, settings=settings)
    assert profile is not None and "email:marketing" not in profile.consent

    app = create_app(settings, store, run_projector=False)
    async with SmtpPeer() as smtp, serve_in_background(app) as url:
        settings.delivery.public_url = url
        deliverer = Deliverer(
            store, {"email": email_channel(smtp)}, settings=settings, channel_queues=False
        )
        client = temporal_env.client
        queue = f"doi-{uuid.uuid4().hex[:8]}"
        acts = JourneyActivities(
            store, client=client, task_queue=queue, deliver_impl=deliverer.deliver
        )
        spec = DoubleOptIn.__journey__
        event = requested[0]
        trigger = JourneyEvent(
            position=event.global_position,
            type=event.type,
            data=event.data,
            event_id=event.event_id,
        )
        key = event.data["request_id"]
        async with Worker(
            client,
            task_queue=queue,
            workflows=[DoubleOptIn],
            activities=[*acts.all(), *ConsentActivities(settings).all()],
        ):
            handle = await client.start_workflow(
                spec.name,
                JourneyInput(
                    member_id=member,
                    key=key,
                    trigger=trigger,
                    settings=spec.resolve_settings(settings.journeys["double_opt_in"]).model_dump(
                        mode="json"
                    ),
                ),
                id=spec.workflow_id(member, key),
                task_queue=queue,
                result_type=JourneyResult,
                start_signal=EVENT_SIGNAL,
                start_signal_args=[trigger],
            )
            result = await handle.result()
        assert [(s.template, s.status) for s in result.sends] == [("consent_confirmation", "sent")]
        assert len(smtp.messages) == 1
        mail = smtp.messages[0]
        assert mail["Subject"] == "Please confirm your subscription"
        text = mail.get_body(("plain",)).get_content()
        link = re.search(rf"{re.escape(url)}/v1/consent/confirm/\S+", text)
        assert link is not None, text
        async with httpx.AsyncClient() as http:
            assert (await http.get(link.group(0))).status_code == 200
            assert (await http.post(link.group(0))).status_code == 200
    await project(store, settings)
    profile = await get_profile(store.pool, member, settings=settings)
    assert profile is not None and profile.consent["email:marketing"] is True
    granted = [
        e.data
        for e in await store.read_stream(f"member-{member}")
        if e.type == "member.consent_changed"
    ]
    assert granted[-1]["source"] == "double_opt_in"
