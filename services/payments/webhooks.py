"""Stripe webhook ingress (`billing run stripe-webhooks`).

`POST {settings.stripe_webhooks_path}` verifies each request with
`stripe.Webhook.construct_event` (HMAC-SHA256 over `"{t}.{payload}"`, tolerance
`stripe_webhook_tolerance_seconds`, 300 s by default), answers 400 to a bad or stale signature
or a body that is not an event, and publishes verified events to `billing.stripe-events.v1` as
`StripeEventReceived` (event id = Stripe's `evt_...`, key = the tenant id in the object's
metadata, else `stripe`). It answers 200 only after the broker acknowledged, so Stripe
redelivers what was not published. The same server serves /metrics, /healthz and /readyz.
The ingress refuses to start without `BILLING_STRIPE_WEBHOOK_SECRET` (no default:
docs/payments.md "Webhook secret").
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import stripe
from faststream.kafka import KafkaBroker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from contracts import TOPIC_STRIPE_EVENTS, StripeEventReceived
from services.common.kafka import ensure_topics
from services.common.ops import OpsServer, ops_app
from services.common.worker import make_broker, publish_event
from services.payments.adapters.metrics import WEBHOOKS
from services.payments.names import WEBHOOKS_SERVICE
from services.payments.settings import PaymentsSettings

log = logging.getLogger(__name__)
PublishStripeEvent = Callable[[StripeEventReceived, str], Awaitable[None]]


def verify(
    payload: bytes, signature: str | None, settings: PaymentsSettings
) -> StripeEventReceived:
    """The verified event as a contract; raises `ValueError` (incl. the SDK's
    `SignatureVerificationError`) when the signature, its age or the body is wrong."""
    if not settings.stripe_webhook_secret:
        raise ValueError("no webhook signing secret is configured")
    try:
        stripe.Webhook.construct_event(
            payload.decode("utf-8"), signature, settings.stripe_webhook_secret,
            tolerance=settings.stripe_webhook_tolerance_seconds,
        )
    except stripe.SignatureVerificationError as exc:
        raise ValueError(f"bad signature: {exc}") from exc
    body = json.loads(payload)
    if not isinstance(body, dict) or not body.get("id") or not body.get("type"):
        raise ValueError("not a Stripe event")
    return StripeEventReceived(
        event_id=str(body["id"]),
        occurred_at=datetime.fromtimestamp(int(body.get("created", 0)), UTC),
        stripe_event_type=str(body["type"]),
        payload=body,
    )


def tenant_key(event: StripeEventReceived) -> str:
    """The message key: the tenant id from the object's metadata, else `stripe`."""
    obj = (event.payload.get("data") or {}).get("object") or {}
    return str((obj.get("metadata") or {}).get("tenant_id") or "stripe")


def webhook_route(settings: PaymentsSettings, publish: PublishStripeEvent) -> Route:
    """The Starlette route receiving Stripe's webhooks. Raises `SystemExit` naming
    `BILLING_STRIPE_WEBHOOK_SECRET` when it is not set."""
    settings.require_webhook_secret()

    async def receive(request: Request) -> Response:
        payload = await request.body()
        try:
            event = verify(payload, request.headers.get("stripe-signature"), settings)
        except (ValueError, UnicodeDecodeError) as exc:
            WEBHOOKS.labels("bad_signature").inc()
            log.warning("webhook refused: %s", exc)
            return JSONResponse({"error": str(exc)[:200]}, status_code=400)
        try:
            await publish(event, tenant_key(event))
        except Exception:
            WEBHOOKS.labels("publish_failed").inc()
            log.exception("webhook %s not published", event.event_id)
            return JSONResponse({"error": "not published, retry"}, status_code=503)
        WEBHOOKS.labels("accepted").inc()
        return JSONResponse({"received": True})

    return Route(settings.stripe_webhooks_path, receive, methods=["POST"])


class WebhookIngress:
    """The ingress server: Kafka publisher plus HTTP endpoint. `start()` returns the port."""

    def __init__(self, settings: PaymentsSettings, broker: KafkaBroker | None = None) -> None:
        settings.require_webhook_secret()
        self.settings = settings
        self.broker = broker or make_broker(settings, name=WEBHOOKS_SERVICE)

        async def publish(event: StripeEventReceived, key: str) -> None:
            await publish_event(self.broker, settings, event, TOPIC_STRIPE_EVENTS, key)

        async def ready() -> dict[str, bool]:
            return {"kafka": bool(await self.broker.ping(timeout=2))}

        self.server = OpsServer(ops_app(ready, [webhook_route(settings, publish)]),
                                settings.stripe_webhooks_host, settings.stripe_webhooks_port)
        self.port = 0

    async def start(self) -> int:
        await ensure_topics(self.settings)
        await self.broker.start()
        self.port = await self.server.start()
        return self.port

    async def stop(self) -> None:
        await self.server.stop()
        await self.broker.stop()

    @property
    def url(self) -> str:
        return f"http://{self.settings.stripe_webhooks_host}:{self.port}" \
               f"{self.settings.stripe_webhooks_path}"


async def serve_webhooks(settings: PaymentsSettings, stop: asyncio.Event) -> None:
    """Run the ingress until `stop` is set."""
    ingress = WebhookIngress(settings)
    await ingress.start()
    log.info("stripe webhook ingress at %s", ingress.url)
    try:
        await stop.wait()
    finally:
        await ingress.stop()
