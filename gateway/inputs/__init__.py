"""Inputs: where the physical world becomes sensor readings."""
