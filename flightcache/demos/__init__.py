"""The demos: each command's narrated steps and timing tables, built on a pattern of
:mod:`flightcache.patterns`; nothing here prints (the commands render the records)."""
