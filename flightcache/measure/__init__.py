"""Measuring, shared by the demos and the bench: timing side by side with warm-up and
percentiles (:mod:`.timing`), histogram buckets (:mod:`.histogram`) and Zipf-skewed
key choice (:mod:`.zipf`). Nothing here knows about Valkey, a database or a terminal."""
