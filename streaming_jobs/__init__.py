"""Spark Structured Streaming jobs: Kafka → bronze → silver → gold Delta tables.

Transformations are pure DataFrame → DataFrame functions (tested with chispa); the ``*_query``
functions only wire a source, a transform and a sink.
"""
