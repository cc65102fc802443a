"""Isolation backends that turn a verified sdist into a wheel."""
