"""Plumbing no user touches: atomic writes, lazy imports."""
