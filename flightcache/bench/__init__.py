"""Workloads and timing: numbers out, nothing printed."""
