"""Defines nothing to tune."""
VALUE = 1
