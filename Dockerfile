# Smart Market Lakehouse — one image for every process of the project (pipeline, Spark master
# and workers, bridge, devices, API, notifier, scheduled jobs). Everything is installed here, at
# build time: requirements.lock (with hashes) and the JVM jars Maven resolves from jvm/*/pom.xml.
# A container only starts its command.
#
#   docker build -t smartmarket .        (docker compose build does the same)

# ---- the JVM jars (Delta, Spark–Kafka, hadoop-aws, Kafka broker) ---------------------------
FROM maven:3.9.9-eclipse-temurin-17 AS jvm
WORKDIR /src
COPY jvm/pom.xml jvm/pom.xml
COPY jvm/kafka-broker/pom.xml jvm/kafka-broker/pom.xml
COPY jvm/spark-libs/pom.xml jvm/spark-libs/pom.xml
COPY jvm/series-judge jvm/series-judge
RUN mvn --batch-mode --quiet -Dstyle.color=never -f jvm/pom.xml package

# ---- the dashboard the API serves (esbuild, from dashboard/package-lock.json) ----------------
FROM node:20-bookworm-slim AS dashboard
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY dashboard/index.html ./
COPY dashboard/src src
RUN npm run build

# ---- the runtime: Python 3.11, a Java 17 runtime for Spark, the locked packages -------------
FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless procps tini \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.lock .
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock
COPY --from=jvm /src/jvm/lib jvm/lib
COPY conf conf
COPY datasets datasets
COPY lakehouse lakehouse
COPY producers producers
COPY streaming_jobs streaming_jobs
COPY ml ml
COPY serving_api serving_api
COPY scripts scripts
COPY dashboard/index.html dashboard/index.html
COPY --from=dashboard /src/dashboard/dist dashboard/dist
COPY run.sh pyproject.toml ./
# the project's processes run unprivileged; their state lives in /data (a volume)
RUN useradd --system --uid 10001 --home-dir /data smartmarket \
    && mkdir -p /data && chown smartmarket /data
USER smartmarket
ENV SMARTMARKET_PATHS__DATA_DIR=/data
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "scripts.cli", "status"]
