"""Firmware for the wearable TENS/EMS unit (MicroPython on RP2040).

Pure core (no `machine` import): board, log. Hardware layer: safe, hw. Wiring: app, main.py.
"""
