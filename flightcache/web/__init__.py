"""`flightcache serve`: the workshop in a browser, and seed 004's leaderboard API.

One FastAPI application (:func:`flightcache.web.app.create_app`) over the same
patterns the CLI runs. Each page is a router module of its own beside the app; the
pages are plain HTML with small scripts under ``static/``, nothing fetched from
elsewhere. The command that starts it is :mod:`flightcache.commands.serve`; the
web stack is imported only there, so ``flightcache --help`` stays fast.
"""
