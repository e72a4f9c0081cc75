"""A fake of Stripe's HTTP API for the embedded stack and tests, driven through the real
`stripe` SDK pointed at it (`base_addresses={"api": "http://127.0.0.1:PORT"}`).

Run it: `python -m services.devstack.stripe_fake --host 127.0.0.1 --port 12111
--webhook-secret whsec_...`. See `app` for its routes and `delivery` for the webhook switches.
"""

from services.devstack.stripe_fake.app import create_app
from services.devstack.stripe_fake.delivery import sign

__all__ = ["create_app", "sign"]
