"""Early-warning rules — pure functions from gold/silver rows to alert rows.

Each rule turns its input into *signals*: one row per evaluation point (a local day, a local
hour, a micro-batch) and key, saying whether the rule fires there, how badly, the value and
what it was compared with. ``episodes`` then turns the signals of each rule × key into alerts:
consecutive firing points are one alert, the first calm point after them resolves it, and a
firing point within the rule's cool-down after a resolution re-opens the same alert. The alert
id is derived from rule, key and the episode's first firing point, so recomputing the same
signals always gives the same alerts (the micro-batch MERGEs them: exactly once).
Thresholds and messages: ``conf/alerts.yaml``.

One module per family of rules (``prices``, ``sensors``, ``held``, ``supply``, ``news``), each
building on ``signals``; ``episodes`` and ``messages`` turn any rule's signals into alert rows.
"""
