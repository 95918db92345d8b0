"""Checks shipped with the library, for our tests and for shops that extend it."""
