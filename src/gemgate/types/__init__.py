"""Canonical Gemini wire types: validation and normalisation of request bodies."""

from gemgate.types.validate import normalise, parse_json, parse_request

__all__ = ["normalise", "parse_json", "parse_request"]
