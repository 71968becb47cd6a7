"""The figures the README and the workshop chapters quote, on one shared setup.

    .venv/bin/python scripts/figures --help
    .venv/bin/python scripts/figures <set> [options]

One subcommand per figure set (one module each); `shared.py` holds what they all
use: a scratch Valkey (and a 3-node cluster when a set asks for one), and the
generated dataset on MySQL/MariaDB and PostgreSQL, loaded once per scale with
one seed into a database named after the scale, kept between runs.
"""
