"""Outputs: actuators that switch things in the physical world."""
