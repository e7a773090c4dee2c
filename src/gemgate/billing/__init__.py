"""Billing: token usage by modality, and its cost in integer nano-USD."""

from gemgate.billing.cost import NANOS_PER_USD, cost_nanos, format_usd, worst_case_nanos
from gemgate.billing.usage import Usage

__all__ = ["NANOS_PER_USD", "Usage", "cost_nanos", "format_usd", "worst_case_nanos"]
