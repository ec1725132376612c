"""Rendering a delivery's message: the template for the channel's kind, in the member's
locale, with signed click-tracking, open and unsubscribe links.

Every attempt renders as the first one did (`SendContext.render_at`): a message sent again,
or looked up at the provider, has the same text and the same links.
"""

from __future__ import annotations

from journeyman.channels import Message
from journeyman.engine.core.delivery_settings import DeliverySettings

from .choice import Candidate, SendContext
from .links import LinkSigner
from .templates import Templates, kind_for


def compose(
    ctx: SendContext,
    chosen: Candidate,
    *,
    config: DeliverySettings,
    links: LinkSigner,
    templates: Templates,
) -> Message:
    """The message for `chosen`; raises `TemplateMissing`/`TemplateError`."""
    assert chosen.channel is not None and chosen.contact is not None
    request, did = ctx.request, ctx.did
    kind = kind_for(chosen.channel.contact)
    base = {"delivery_id": did, "member_id": request.member_id, "channel": chosen.name}
    at = ctx.render_at or ctx.now
    click_exp = at + config.click_link_ttl
    unsubscribe = None
    if request.purpose == "marketing":
        unsubscribe = links.unsubscribe_url(**base, expires_at=at + config.unsubscribe_link_ttl)

    def track(url: str) -> str:
        if not config.track_clicks or url.startswith(links.base_url):
            return url
        return links.click_url(url, **base, expires_at=click_exp)

    profile = ctx.profile
    context = {
        **request.context,
        "journey": request.journey,
        "variant": request.variant,
        "site_url": config.site_url,
        "unsubscribe_url": unsubscribe or "",
        "member": {
            "id": request.member_id,
            "locale": profile.locale if profile else None,
            "traits": dict(profile.traits) if profile else {},
        },
    }
    pixel = None
    if config.track_opens and kind == "email":
        pixel = links.open_url(**base, expires_at=click_exp)
    rendered = templates.render(
        request.template,
        kind,
        context,
        locale=profile.locale if profile else None,
        track=track,
        open_pixel=pixel,
        keep=frozenset({unsubscribe} if unsubscribe else ()),
        channel=chosen.channel.name,
    )
    return Message(
        to=chosen.contact,
        text=rendered.text,
        subject=rendered.subject,
        html=rendered.html,
        title=rendered.title,
        data={"delivery_id": did, "journey": request.journey, "template": request.template},
        delivery_id=did,
        member_id=request.member_id,
        unsubscribe_url=unsubscribe if kind == "email" else None,
        metadata={"journey": request.journey, "template": request.template},
        first_attempt_at=ctx.render_at,
    )
