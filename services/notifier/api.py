"""What other code (the demo, operators' tools) may use of the notifier: its names.

`SERVICE` (worker and consumer group), `CONSUMES` ((contract topic, consumer group) per
subscription) and `OUTBOXES` (its outbox collections). The notifier is driven only by events;
docs/design.md#services describes its place in the flow.
"""

from services.notifier.names import CONSUMES, OUTBOXES, SERVICE

__all__ = ["CONSUMES", "OUTBOXES", "SERVICE"]
