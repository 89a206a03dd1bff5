"""Adapters that plug medground into other training engines (verl)."""
