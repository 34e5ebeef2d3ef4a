"""Laptop-side tools for the wearable TENS/EMS unit (`stimctl`)."""
