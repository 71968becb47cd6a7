"""One module per caching pattern: the logic, and the demo that narrates it.

Nothing here imports typer or rich. Each module opens with its read path,
write path and failure mode; its pattern class is what the demo narrates and
what ``flightcache bench`` drives.
"""
