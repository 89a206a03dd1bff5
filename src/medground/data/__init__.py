"""Data: the canonical sample schema, medical image IO, converters, phantoms, validation."""
