"""Built-in templates of the built-in journeys' messages, in English (and French for the cart
reminder). A templates directory overrides any of them (see `journeyman.engine.delivery.templates`).

Keys are `<template>/<kind>.<part>` (default locale) or `<template>/<kind>.<part>.<locale>`.
"""

from __future__ import annotations

_FOOTER_HTML = (
    '<p style="font-size:12px;color:#777">You get this because you shop with us. '
    '<a href="{{ unsubscribe_url }}">Unsubscribe</a>.</p>'
)
_FOOTER_TEXT = "Unsubscribe: {{ unsubscribe_url }}"
_STOP = " Reply STOP to opt out."


def _email(subject: str, body_html: str, body_text: str) -> dict[str, str]:
    return {
        "email.subject": subject,
        "email.html": f"<html><body>{body_html}{_FOOTER_HTML}</body></html>",
        "email.text": f"{body_text}\n\n{_FOOTER_TEXT}\n",
    }


BUILTIN: dict[str, dict[str, str]] = {
    "cart_reminder": {
        **_email(
            "{% if urgent %}Your cart is about to expire{% else %}You left something in your "
            "cart{% endif %}",
            "<h1>Still thinking it over?</h1><ul>{% for item in items %}<li>{{ item.name "
            "| default(item.sku) | default(item) }}</li>{% endfor %}</ul>"
            '<p><a href="{{ site_url }}/cart/{{ cart_id }}">Back to your cart</a></p>',
            "Still thinking it over? Your cart is waiting: {{ track(site_url ~ '/cart/' ~ "
            "cart_id) }}",
        ),
        "email.subject.fr": "Vous avez oublié quelque chose dans votre panier",
        "email.text.fr": "Votre panier vous attend : {{ track(site_url ~ '/cart/' ~ cart_id) }}"
        "\n\nSe désabonner : {{ unsubscribe_url }}\n",
        "email.html.fr": "<html><body><h1>Votre panier vous attend</h1>"
        '<p><a href="{{ site_url }}/cart/{{ cart_id }}">Retour au panier</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Se désabonner</a></p></body></html>',
        "sms.text": "Your cart is waiting: {{ track(site_url ~ '/cart/' ~ cart_id) }}" + _STOP,
        "push.title": "Your cart is waiting",
        "push.body": "Come back and finish your order.",
    },
    "cart_coupon": {
        **_email(
            "{{ coupon_percent }}% off the cart you left",
            "<p>Use <strong>{{ coupon_code }}</strong> for {{ coupon_percent }}% off.</p>"
            '<p><a href="{{ site_url }}/cart/{{ cart_id }}?coupon={{ coupon_code }}">'
            "Finish your order</a></p>",
            "Use {{ coupon_code }} for {{ coupon_percent }}% off: "
            "{{ track(site_url ~ '/cart/' ~ cart_id) }}",
        ),
        "sms.text": "{{ coupon_percent }}% off your cart with {{ coupon_code }}: "
        "{{ track(site_url ~ '/cart/' ~ cart_id) }}" + _STOP,
        "push.title": "{{ coupon_percent }}% off your cart",
        "push.body": "Use {{ coupon_code }} at checkout.",
    },
    "consent_confirmation": {
        "email.subject": "Please confirm your subscription",
        "email.html": "<html><body><h1>One more step</h1><p>Confirm that you want our news "
        'and offers by email:</p><p><a href="{{ confirm_url }}">Yes, subscribe me</a></p>'
        "<p>If you did not ask for this, ignore this message.</p></body></html>",
        "email.text": "Confirm that you want our news and offers by email: {{ confirm_url }}\n"
        "If you did not ask for this, ignore this message.\n",
    },
    "welcome": {
        **_email(
            "Welcome!",
            '<h1>Welcome!</h1><p>Glad to have you. <a href="{{ site_url }}">Start '
            "shopping</a>.</p>",
            "Welcome! Glad to have you: {{ track(site_url) }}",
        ),
        "sms.text": "Welcome! Glad to have you." + _STOP,
        "push.title": "Welcome!",
        "push.body": "Glad to have you.",
    },
    "welcome_tips": {
        **_email(
            "A few tips to get started",
            '<p>Save favourites, track orders and more. <a href="{{ site_url }}/help">'
            "See how</a>.</p>",
            "Save favourites, track orders and more: {{ track(site_url ~ '/help') }}",
        ),
        "sms.text": "Tip: save favourites and track orders in your account." + _STOP,
        "push.title": "Getting started",
        "push.body": "Save favourites and track orders.",
    },
    "first_order_incentive": {
        **_email(
            "{{ incentive_percent | default(10) }}% off your first order",
            "<p>Take {{ incentive_percent | default(10) }}% off your first order.</p>"
            '<p><a href="{{ site_url }}">Shop now</a></p>',
            "Take {{ incentive_percent | default(10) }}% off your first order: "
            "{{ track(site_url) }}",
        ),
        "sms.text": "{{ incentive_percent | default(10) }}% off your first order: "
        "{{ track(site_url) }}" + _STOP,
        "push.title": "{{ incentive_percent | default(10) }}% off",
        "push.body": "Your first order is on us (partly).",
    },
    "we_miss_you": {
        **_email(
            "We miss you: {{ offer_percent | default(15) }}% off",
            "<p>It has been a while. Here is {{ offer_percent | default(15) }}% off.</p>"
            '<p><a href="{{ site_url }}">Come back</a></p>',
            "It has been a while. Here is {{ offer_percent | default(15) }}% off: "
            "{{ track(site_url) }}",
        ),
        "sms.text": "We miss you! {{ offer_percent | default(15) }}% off: {{ track(site_url) }}"
        + _STOP,
        "push.title": "We miss you",
        "push.body": "{{ offer_percent | default(15) }}% off, this week only.",
    },
    "we_miss_you_follow_up": {
        **_email(
            "Last chance: {{ offer_percent | default(15) }}% off",
            "<p>Your {{ offer_percent | default(15) }}% off ends soon.</p>"
            '<p><a href="{{ site_url }}">Use it</a></p>',
            "Your {{ offer_percent | default(15) }}% off ends soon: {{ track(site_url) }}",
        ),
        "sms.text": "Last chance: {{ offer_percent | default(15) }}% off ends soon: "
        "{{ track(site_url) }}" + _STOP,
        "push.title": "Last chance",
        "push.body": "Your {{ offer_percent | default(15) }}% off ends soon.",
    },
    "satisfaction_survey": {
        **_email(
            "How was your order?",
            '<p>Tell us how it went: <a href="{{ site_url }}/survey'
            '{% if order_id %}?order={{ order_id }}{% endif %}">two questions</a>.</p>',
            "Tell us how it went: {{ track(site_url ~ '/survey') }}",
        ),
        "sms.text": "How was your order? {{ track(site_url ~ '/survey') }}" + _STOP,
        "push.title": "How was your order?",
        "push.body": "Two questions, one minute.",
    },
}
