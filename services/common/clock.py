"""The billing clock.

In production (`BILLING_CLOCK_MODE=wall`) an effect happens now. For replays and the demo
(`BILLING_CLOCK_MODE=event`) the billing clock is moved by operators (`--as-of`), and an effect
triggered by an event happens at that event's `occurred_at`: a charge made on `InvoiceIssued`
is dated the day the invoice was issued, not the day the replay ran.
"""

from datetime import datetime
from typing import Literal

from contracts.base import utc_now

ClockMode = Literal["wall", "event"]


def effect_time(mode: ClockMode, trigger: datetime) -> datetime:
    """When an effect triggered at `trigger` happens under clock `mode` (tz-aware)."""
    return trigger if mode == "event" else utc_now()
