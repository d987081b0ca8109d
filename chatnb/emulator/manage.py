"""The emulator's own management endpoints: Event Grid subscriptions and the clock, under ``/chatnb/``.

Authenticated as the Identity API is, with the access key's HMAC signature (or, with ``--oauth basic``,
an Entra ID token): whoever holds the resource's key may manage it. No ``api-version``.

====== ============================================================ ==========================================
GET    ``/chatnb/eventGridSubscriptions``                            ``{"value": [subscription...]}``
PUT    ``/chatnb/eventGridSubscriptions/{name}``                     add or replace: 201 (200 if replaced)
GET    ``/chatnb/eventGridSubscriptions/{name}``                     one, with ``provisioningState`` and
                                                                     ``statistics``; 404 if none
DELETE ``/chatnb/eventGridSubscriptions/{name}``                     204 (also when there was none)
GET    ``/chatnb/eventGridSubscriptions/{name}/:validate?code=C``    the handshake's ``validationUrl``: no
                                                                     key, the code is the secret
GET    ``/chatnb/clock``                                             ``{"mode", "now"}``
POST   ``/chatnb/clock/:advance`` ``{"seconds": N}``                 move a manual clock on; 409 for the
                                                                     system clock
====== ============================================================ ==========================================

A subscription body is :meth:`~chatnb.emulator.gridsubs.EventGridSubscription.from_json`'s: ``endpoint``
(required), ``eventTypes``, ``schema``, ``maxEventsPerBatch``, ``preferredBatchSizeInKilobytes``,
``maxDeliveryAttempts``, ``eventTimeToLiveInMinutes``. A webhook that fails the validation handshake
gets 400 ``WebhookValidationFailed`` (the subscription stays listed as ``Failed``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .._time import format_rfc3339
from .auth import verify_identity_request
from .clock import ClockError
from .errors import BadRequest, Conflict, NotFound
from .griddelivery import GridDelivery
from .gridsubs import EventGridSubscription, SubscriptionError
from .http import empty_response, json_response, read_object
from .state import state_of

__all__ = ["CLOCK_PATH", "SUBSCRIPTIONS_PATH", "routes"]

SUBSCRIPTIONS_PATH = "/chatnb/eventGridSubscriptions"
CLOCK_PATH = "/chatnb/clock"
MAX_ADVANCE_S = 100 * 365 * 86_400.0


def _delivery(request: Request) -> GridDelivery:
    delivery = state_of(request).delivery
    if delivery is None:  # pragma: no cover - every Emulator has one
        raise NotFound("This emulator has no Event Grid delivery.")
    return delivery


def list_subscriptions(request: Request) -> Response:
    verify_identity_request(request)
    return json_response({"value": _delivery(request).subscriptions()})


def put_subscription(request: Request) -> Response:
    verify_identity_request(request)
    body = read_object(request)
    delivery = _delivery(request)
    name: str = request.path_params["name"]
    try:
        subscription = EventGridSubscription.from_json(body, name=name)
    except SubscriptionError as exc:
        raise BadRequest(str(exc), code="InvalidSubscription") from None
    existed = delivery.get(subscription.name) is not None
    try:
        out = delivery.add(subscription)
    except SubscriptionError as exc:
        raise BadRequest(str(exc), code="WebhookValidationFailed", target="endpoint") from None
    return json_response(out, 200 if existed else 201)


def get_subscription(request: Request) -> Response:
    verify_identity_request(request)
    name: str = request.path_params["name"]
    state = _delivery(request).get(name)
    if state is None:
        raise NotFound(f"No Event Grid subscription named {name[:64]!r}.", code="SubscriptionNotFound")
    return json_response(state)


def delete_subscription(request: Request) -> Response:
    verify_identity_request(request)
    _delivery(request).remove(request.path_params["name"])
    return empty_response(204)


def validate_subscription(request: Request) -> Response:
    code = request.query_params.get("code", "")
    if not _delivery(request).validate_manually(request.path_params["name"], code):
        raise BadRequest("No subscription awaits validation with this code.", code="InvalidValidationCode")
    return json_response({"validated": True})


def _clock_json(request: Request) -> dict[str, Any]:
    clock = state_of(request).clock
    return {"mode": clock.mode, "now": format_rfc3339(clock.now_us())}


def get_clock(request: Request) -> Response:
    verify_identity_request(request)
    return json_response(_clock_json(request))


def advance_clock(request: Request) -> Response:
    verify_identity_request(request)
    seconds = read_object(request).get("seconds")
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, (int, float))
        or not 0 <= seconds <= MAX_ADVANCE_S
    ):
        raise BadRequest("seconds must be a number from 0 to 100 years of seconds.", target="seconds")
    try:
        state_of(request).clock.advance(float(seconds))  # a manual clock's listeners sweep retention here
    except ClockError as exc:
        raise Conflict(str(exc), code="ClockNotManual") from None
    return json_response(_clock_json(request))


def routes() -> list[Route]:
    """The management routes (status ``emulator`` in the coverage table)."""
    one = SUBSCRIPTIONS_PATH + "/{name}"
    return [
        Route(
            SUBSCRIPTIONS_PATH, list_subscriptions, methods=["GET"], name="chatnb_ListEventGridSubscriptions"
        ),
        Route(one, put_subscription, methods=["PUT"], name="chatnb_PutEventGridSubscription"),
        Route(one, get_subscription, methods=["GET"], name="chatnb_GetEventGridSubscription"),
        Route(one, delete_subscription, methods=["DELETE"], name="chatnb_DeleteEventGridSubscription"),
        Route(
            one + "/:validate",
            validate_subscription,
            methods=["GET"],
            name="chatnb_ValidateEventGridSubscription",
        ),
        Route(CLOCK_PATH, get_clock, methods=["GET"], name="chatnb_GetClock"),
        Route(CLOCK_PATH + "/:advance", advance_clock, methods=["POST"], name="chatnb_AdvanceClock"),
    ]
