"""Fixtures of the Anthropic door's tests (a gateway of their own, per test module)."""

from tests.doors.anthropic_gateway import agw, akey, client, fake_anthropic

__all__ = ["agw", "akey", "client", "fake_anthropic"]
