"""What other code (the demo) may use of the embedded stack: start, inspect and stop it, break
its dependencies (`EmbeddedStack.restart_mongodb`, `EmbeddedStack.cut_kafka`), publish poison
messages, and pick free loopback ports for servers of its own. docs/operations.md describes the
stack and its faults."""

from services.devstack.poison import POISON_TENANT, Poison, poison_messages, publish_poison
from services.devstack.ports import free_port
from services.devstack.stack import EmbeddedStack, StackError, StackState

__all__ = [
    "POISON_TENANT",
    "EmbeddedStack",
    "Poison",
    "StackError",
    "StackState",
    "free_port",
    "poison_messages",
    "publish_poison",
]
