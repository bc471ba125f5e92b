"""Conversion methods, one package each (docs/adding_a_method.md)."""
