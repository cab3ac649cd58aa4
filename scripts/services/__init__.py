"""Supervision of the embedded stack: start, stop and check each service.

Every service runs in its own process group under its keeper (``scripts.keeper``), with a pid
file under ``<data_dir>/run`` and its output in ``<data_dir>/logs/<name>.log``, rotated by size.
The keeper restarts a service that exits without being asked to, with a back-off, and counts the
restarts. ``up`` is idempotent (a healthy service is left alone), ``down`` stops in reverse order
(SIGTERM to the group, SIGKILL after the stop timeout; the nodes of a Kafka cluster at once),
so no process is left behind.

One module per kind of service (``base`` holds what they share); ``supervisor`` starts
and stops them together.
"""
