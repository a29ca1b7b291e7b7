"""Benchmarks: each case times our code against a baseline measured in the same run.

`python -m benchmarks.run [--case NAME]` (or `make bench [CASE=NAME]`) writes
`bench-results.json`; see docs/benchmarks.md.
"""
