"""Benchmarks: the factory side by side with its peers, in one run (`make bench`).

Each comparison is one module in this package that defines ``COMPARISON`` (a
:class:`bench.harness.Comparison`); the harness finds it by itself, runs it,
and reports medians, ranges and ratios. Ratios are the headline: both sides ran
in the same run on the same machine. Absolute figures only hold for the machine
they were taken on, which every report describes.
"""
