"""Latency you can trust: each comparison group's variants timed together, in interleaved rounds.

`groups` says which variants are timed together, `rounds` times them (one worker process per variant,
`worker`), `stage` is the timing rule's entry point; `deltamut.compare.stats.compare_rounds` turns two
members' rounds into a ratio, its interval and a test, and `deltamut.compare.tables` into a pair's verdict.
"""
