"""What other code (the demo) may use of the embedded stack: start, inspect and stop it, and
pick free loopback ports for servers of its own. docs/operations.md describes the stack."""

from services.devstack.ports import free_port
from services.devstack.stack import EmbeddedStack, StackError, StackState

__all__ = ["EmbeddedStack", "StackError", "StackState", "free_port"]
