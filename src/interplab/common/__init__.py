"""Shared helpers used by every area: errors, output folders, atomic I/O, figures, data, models."""
