"""Measuring, shared by the demos and the bench: timing side by side with warm-up and
percentiles (:mod:`.timing`), histogram buckets (:mod:`.histogram`), Zipf-skewed key
choice (:mod:`.zipf`) and the one duration formatter (:mod:`.duration`). Nothing here
knows about Valkey, a database or a terminal."""
