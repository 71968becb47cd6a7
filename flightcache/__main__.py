"""``python -m flightcache`` runs the CLI."""

from flightcache.cli import main

raise SystemExit(main())
