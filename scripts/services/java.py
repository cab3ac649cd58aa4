"""The Java runtime the JVM services (Kafka, the Spark cluster, the pipeline) start with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lakehouse.config.settings import ConfigError


def java_binary() -> str:
    """The ``java`` of ``JAVA_HOME``, else the one on the PATH (as Spark's launcher finds it)."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    if candidate and candidate.exists():
        return str(candidate)
    found = shutil.which("java")
    if not found:
        raise ConfigError(
            "Java not found: the Kafka broker and Spark need a Java 17+ runtime. Install it "
            "(apt-get install openjdk-17-jre-headless) or set JAVA_HOME."
        )
    return found


def jdk_home() -> Path:
    """The folder of the JDK (or JRE) that ``java_binary`` belongs to."""
    return Path(java_binary()).resolve().parent.parent
