"""Self-paced exercises: a learner completes a function or two, checks run them for real.

Each exercise is a Python file under ``workshop/exercises/`` (shipped in the wheel
as ``flightcache/exercises/files``) with the code to write between ``# START
<name>`` and ``# END <name>``; ``solutions/`` holds the reference code for
between the markers. ``start`` copies the starter to a folder the learner owns;
``check`` runs the exercise's checks against the configured database and Valkey.

How a check run keeps the learner's code in its lane:

- The learner's code runs in a child process (``python -m
  flightcache.exercises.child``), one check at a time, each with a time limit;
  a check that runs over is killed and reported as timed out.
- Every run works under a key prefix of its own. A Valkey ACL user restricted to
  ``~<prefix>*`` (set on every primary, deleted afterwards) makes any access
  outside it fail with NOPERM, and the ACL LOG tells which key was tried. Sentinel
  keys outside the prefix are verified afterwards too; where ACLs are unavailable
  they are the only guard, and the report says so.
- Rows a check writes are reported by the child before the learner's code runs
  and deleted by id afterwards, also when the child was killed.

Nothing here imports typer or rich.
"""
