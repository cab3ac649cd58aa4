# Smart Market Lakehouse — one image for every process of the project (pipeline, Spark master
# and workers, bridge, devices, price simulator, API, notifier, MLflow, the scheduler). Everything is installed here, at
# build time: requirements.lock (with hashes: the platform's packages, no test tools) and the JVM
# jars Maven resolves from jvm/*/pom.xml.
# A container only starts its command.
#
#   docker build -t smartmarket .        (docker compose build does the same)

# ---- the JVM jars (Delta, Spark–Kafka, hadoop-aws, Kafka broker) ---------------------------
FROM maven:3.9.9-eclipse-temurin-17 AS jvm
WORKDIR /src
COPY jvm/pom.xml jvm/pom.xml
COPY jvm/kafka-broker/pom.xml jvm/kafka-broker/pom.xml
COPY jvm/spark-libs/pom.xml jvm/spark-libs/pom.xml
COPY jvm/jmx-exporter/pom.xml jvm/jmx-exporter/pom.xml
COPY jvm/series-judge jvm/series-judge
RUN mvn --batch-mode --quiet -Dstyle.color=never -f jvm/pom.xml package

# ---- the dashboard the API serves (esbuild, from dashboard/package-lock.json) ----------------
# Node 22: a long-term-support line (maintained until April 2027)
FROM node:22-bookworm-slim AS dashboard
WORKDIR /src/dashboard
COPY dashboard/package.json dashboard/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY dashboard/index.html ./
COPY dashboard/src src
RUN npm run build

# ---- the runtime: Python 3.11, a Java 17 runtime for Spark, the locked packages -------------
FROM python:3.11-slim-bookworm
# OMP_WAIT_POLICY as ./run.sh sets it: the models' OpenMP threads sleep, not spin, beside Spark
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONPATH=/app \
    OMP_WAIT_POLICY=PASSIVE
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless procps tini tzdata \
    && rm -rf /var/lib/apt/lists/*
# supercronic, a cron made for containers (jobs get the container's environment, log to stdout,
# run as the image's user): the scheduler service runs scripts/crontab with it. Debian 12 has no
# package of it, so the release binary, checked against its published SHA-1 and SHA-256.
ARG SUPERCRONIC_URL=https://github.com/aptible/supercronic/releases/download/v0.2.46/supercronic-linux-amd64
RUN python -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], '/usr/local/bin/supercronic')" "$SUPERCRONIC_URL" \
    && echo "5bcefed628e32adc08e32634db2d10e9230dbca0  /usr/local/bin/supercronic" | sha1sum -c - \
    && echo "5adff01c5a797663948e656d2b61d10932369ee437eb5cb54fa872b2960f222b  /usr/local/bin/supercronic" | sha256sum -c - \
    && chmod 0755 /usr/local/bin/supercronic
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
# the project's processes run unprivileged; their state lives in /data (a volume), the broker's
# files in /data/mosquitto and config-init's output in /etc/smartmarket (volumes that take this
# ownership when created)
# scripts/crontab's job lines (`cd /opt/smart-market && .venv/bin/python …`) as they are: the
# checkout is /app and its interpreter the image's Python
RUN useradd --system --uid 10001 --home-dir /data smartmarket \
    && mkdir -p /data/mosquitto /etc/smartmarket /mlflow /app/.venv/bin \
    && chown smartmarket /data /data/mosquitto /etc/smartmarket /mlflow \
    && ln -s /usr/local/bin/python /app/.venv/bin/python && ln -s /app /opt/smart-market
USER smartmarket
ENV SMARTMARKET_PATHS__DATA_DIR=/data
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "scripts.cli", "status"]
