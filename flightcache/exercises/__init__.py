"""Self-paced exercises: a learner completes a function or two, checks run them for real.

Each exercise is a Python file under ``workshop/exercises/`` (shipped in the wheel
as ``flightcache/exercises/files``) with the code to write between ``# START
<name>`` and ``# END <name>``; ``solutions/`` holds the reference code for
between the markers. ``start`` copies the starter to a folder the learner owns;
``check`` runs the exercise's checks against the configured database and Valkey.

How a check run keeps the learner's code in its lane (``runner``, ``child``,
``sandbox``; the chapter ``workshop/exercises/README.md`` says what it does not fence):

- The checks run in the parent with its own clients and judge the servers' state
  and the learner's return values. The learner's code runs in a child started
  fresh (``python -I``, a clean environment, its own session) that holds only the
  URL of the run's Valkey ACL user; its database statements come back to the
  parent and run as a per-run role that reads the dataset and writes only its
  scratch area.
- The ACL user may touch only ``~<prefix>*`` (set on every primary) and no
  @dangerous/@admin command, SELECT, SCRIPT FLUSH/KILL or FUNCTION; sentinel keys
  outside the prefix are verified afterwards too (the only guard where ACLs are
  unavailable, and the report says so).
- A check over its time limit sends SCRIPT KILL / FUNCTION KILL and kills the
  child's process group; the child lowers its CPU, memory and process limits and
  forks a watchdog that kills its group when the parent is gone.
- The ACL user, the role and its scratch area are recorded in the state directory
  before they are made, dropped after the run, and swept by the next run when a
  run was killed.

Nothing here imports typer or rich.
"""
