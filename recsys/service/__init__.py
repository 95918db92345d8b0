"""Serving: the model handle (hot swap), event updates and the HTTP service."""
