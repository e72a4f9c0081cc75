"""Input for `billing demo` without `--tenants/--trace`: generated here, freely redistributable.

Writes a tenants file shaped like the Bitbrains replay's (`tenants.json`) and a synthetic trace
in the Bitbrains CSV format (`<dir>/<YYYY-M>/<vm>.csv`, fields separated by ";" and a tab, one
row every 300 s), from a fixed seed, so every run produces the same invoices.
"""

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HEADER = (
    "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\t"
    "CPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\t"
    "Disk read throughput [KB/s];\tDisk write throughput [KB/s];\t"
    "Network received throughput [KB/s];\tNetwork transmitted throughput [KB/s]"
)
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 3, 1, tzinfo=UTC)
#: The billing clock the sample replay runs to.
SAMPLE_AS_OF = "2024-03-20T00:00:00Z"
VMS = {"9001": 4, "9002": 2, "9003": 8}


def _tenants() -> dict[str, object]:
    charges = [
        {"meter": "cpu_hours", "model": "per_unit", "unit_price": "0.04"},
        {"meter": "memory_gb_hours", "model": "per_unit", "unit_price": "0.005"},
        {"meter": "bandwidth_gb", "model": "per_unit", "unit_price": "0.09"},
    ]
    return {
        "actor": {"user_id": "demo-operator", "role": "super"},
        "tenants": [
            {
                "tenant_id": "northwind",
                "name": "Northwind Traders",
                "timezone": "UTC",
                "effective_from": "2024-01-01",
                "billing_config": {
                    "flat_rate_amount": "29.00",
                    "currency": "USD",
                    "billing_frequency": "monthly",
                    "billing_email": "billing@northwind.example",
                    "auto_generate_invoices": True,
                    "billing_day_of_month": 1,
                    "payment_due_days": 14,
                    "email_notifications": True,
                },
                "price_plan": {"charges": charges},
                "payment_method": "pm_card_visa",
                "credits": [
                    {
                        "amount": "10.00",
                        "granted_at": "2024-01-20T10:00:00Z",
                        "granted_by": "demo-operator",
                        "reason": "goodwill for a slow week",
                    }
                ],
                "usage_sources": [{"trace": "sample", "vm": "9001", "service": "web"}],
            },
            {
                "tenant_id": "contoso",
                "name": "Contoso Europe BV",
                "timezone": "Europe/Amsterdam",
                "effective_from": "2024-01-31",
                "billing_config": {
                    "flat_rate_amount": "0",
                    "currency": "EUR",
                    "billing_frequency": "monthly",
                    "billing_email": "ap@contoso.example",
                    "auto_generate_invoices": True,
                    "billing_day_of_month": 31,
                    "payment_due_days": 10,
                    "email_notifications": True,
                },
                "price_plan": {
                    "charges": [
                        {
                            "meter": "cpu_hours",
                            "model": "graduated",
                            "tiers": [
                                {"up_to": "200", "unit_price": "0.05"},
                                {"up_to": None, "unit_price": "0.03"},
                            ],
                        },
                        {
                            "meter": "memory_gb_hours",
                            "model": "per_unit",
                            "unit_price": "0.004",
                            "included_quantity": "500",
                        },
                    ]
                },
                "payment_method": "pm_card_chargeCustomerFail",
                "usage_sources": [{"trace": "sample", "vm": "9002", "service": "batch"}],
            },
            {
                "tenant_id": "tyrell",
                "name": "Tyrell Kenya Ltd",
                "timezone": "Africa/Nairobi",
                "effective_from": "2024-01-15",
                "billing_config": {
                    "flat_rate_amount": "1500.00",
                    "currency": "KES",
                    "billing_frequency": "monthly",
                    "billing_email": "finance@tyrell.example",
                    "auto_generate_invoices": True,
                    "billing_day_of_month": 15,
                    "payment_due_days": 7,
                    "email_notifications": False,
                },
                "price_plan": {
                    "charges": [
                        {"meter": "cpu_hours", "model": "per_unit", "unit_price": "5.00"},
                        {"meter": "bandwidth_gb", "model": "per_unit", "unit_price": "10.00"},
                    ]
                },
                "payment_method": "pm_card_visa",
                "coupon": {"code": "TyrellWelcome24", "amount_off": "500.00", "duration": "once"},
                "usage_sources": [{"trace": "sample", "vm": "9003", "service": "analytics"}],
            },
        ],
    }


def _row(rng: random.Random, when: int, cores: int, phase: float) -> str:
    hour = (when // 3600) % 24
    load = 0.35 + 0.3 * math.sin((hour / 24) * 2 * math.pi + phase) + rng.uniform(-0.1, 0.1)
    pct = max(0.0, min(100.0, load * 100))
    capacity = cores * 2600.0
    mem_cap = cores * 2097152.0
    mem = mem_cap * max(0.05, min(0.95, load + rng.uniform(-0.05, 0.05)))
    rx, tx = rng.uniform(0, 400), rng.uniform(0, 120)
    fields = [
        when,
        cores,
        capacity,
        capacity * pct / 100,
        pct,
        mem_cap,
        mem,
        rng.uniform(0, 50),
        rng.uniform(0, 80),
        rx,
        tx,
    ]
    return ";\t".join(str(round(f, 6)) if isinstance(f, float) else str(f) for f in fields)


def write_sample(directory: Path, seed: int = 2024) -> tuple[Path, Path]:
    """Write the sample tenants file and trace under `directory`; returns (tenants, trace dir)."""
    rng = random.Random(seed)
    trace = directory / "sample-trace"
    for vm, cores in VMS.items():
        phase = rng.uniform(0, math.pi)
        month_start = START
        while month_start < END:
            nxt = (month_start + timedelta(days=32)).replace(day=1)
            folder = trace / f"{month_start.year}-{month_start.month}"
            folder.mkdir(parents=True, exist_ok=True)
            first = int(month_start.timestamp()) + 120
            rows = [_row(rng, t, cores, phase) for t in range(first, int(nxt.timestamp()), 300)]
            (folder / f"{vm}.csv").write_text(HEADER + "\n" + "\n".join(rows) + "\n")
            month_start = nxt
    tenants = directory / "tenants.json"
    tenants.write_text(json.dumps(_tenants(), indent=2) + "\n")
    return tenants, trace
