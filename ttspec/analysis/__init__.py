"""Interpreters and reports over the IR: shapes, counts, FLOPs, memory, diagrams."""
