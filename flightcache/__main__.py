"""``python -m flightcache`` runs the CLI."""

from flightcache.children import adopt_parent_from_env

adopt_parent_from_env()  # started by flightcache: die with that parent

from flightcache.cli import main  # noqa: E402

raise SystemExit(main())
