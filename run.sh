#!/usr/bin/env bash
# Smart Market Lakehouse — the single entry point. Every command (README: Daily tasks):
#
#   ./run.sh [up] [SERVICE]       set up on first use, then start services + pipeline
#   ./run.sh down [SERVICE]       stop everything (or one service)
#   ./run.sh status [SERVICE]     what runs, where, healthy or not, restarts (exit 1 if down)
#   ./run.sh logs [SERVICE] [-n N] [-f]   a service's log, or follow it
#   ./run.sh ingest FILE...       publish CSV reports to Kafka once
#   ./run.sh watch DIR [--once]   publish each CSV file dropped into DIR once
#   ./run.sh replay FILE [--speed X|max] [--start T] [--end T] [--fan-out N]
#   ./run.sh load-history [FILE...]   history into bronze/silver in bulk (Spark over the files)
#   ./run.sh up --cluster N       the same on a Spark standalone master and N workers
#   ./run.sh topics               create the Kafka topics on the configured (external) cluster
#   ./run.sh simulate             the simulated MQTT devices in the foreground
#   ./run.sh simulate-supply [--days N] [--start D]   a simulated supply chain into Kafka
#   ./run.sh bridge               the MQTT → Kafka bridge in the foreground
#   ./run.sh query "SQL" [--engine spark|duckdb] [--as-of V|T] | --history TABLE
#   ./run.sh tables [--markdown|--docs]   the data dictionary
#   ./run.sh maintain [--table T] OPTIMIZE/Z-ORDER, VACUUM, log cleanup
#   ./run.sh backtest FILE        rolling-origin backtest of the forecasting models
#   ./run.sh retrain [--if-changed|--anomalies-only]   forecasts, anomalies, impact model
#   ./run.sh impact --commodity C (--market-id M|--region R) --date D
#   ./run.sh api-key ROLE [--name N]      mint an API key
#   ./run.sh user NAME ROLE       create or reset an API user
#   ./run.sh ledger [--verify]    hash-chain new prices into gold.price_ledger, or verify it
#   ./run.sh test [--fast] [PYTEST ARGS]  the test suite (--fast: without Spark and services,
#                                 a worker per core;
#                                 without ARGS: the unit tests beside the integration tests)
#   ./run.sh bench NAME [ARGS]    a benchmark of bench/ (prints numbers)
#   ./run.sh setup [--dev|--analyst]   only install: venv, Maven jars, Mosquitto, dashboard
#                                 (--dev: also the test packages, Chromium, Compose CLI, amtool,
#                                 MQTT clients, PostgreSQL for the tests; --analyst: JupyterLab)
#   ./run.sh lint                 ruff
#   ./run.sh lock                 re-resolve requirements{,-dev,-analyst}.lock from pyproject.toml
#   ./run.sh help                 this list
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
UV_VERSION="0.13.9"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# every process started from here caches the bytecode of what it imports, Python's default, also
# where the environment sets PYTHONDONTWRITEBYTECODE: each module is compiled once, at its first
# import — not in every process again, nor all 19 000 of the venv at install, ~95 CPU s for the
# ~30 % that any process imports (docs/benchmarks.md, eleventh and thirty-seventh entries)
unset PYTHONDONTWRITEBYTECODE
# OpenMP's threads (scikit-learn's, LightGBM's) sleep while they wait for work rather than spin:
# on a box that Spark and the services share, a spinning thread holds the core that the thread
# it waits for needs (the model tests beside a busy core: 94–103 → 53–55 CPU s;
# docs/benchmarks.md, forty-third entry)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

#: the tests that need neither Spark nor a service (the quick loop, ./run.sh test --fast)
UNIT_TESTS="not services and not spark and not journey"
#: the tests that need Spark or services (``./run.sh test`` runs them in two sessions: the files
#: of LATE_FILES, the JVM judge's, tests/test_ma*, test_me* and tests/test_n* onwards, in the
#: second, once the unit tests are done; with tests/test_k* and test_l* there too, the unit and
#: late sessions ended 35–90 s after the first in CI, with test_mqtt_auth.py 26–32 s after it)
INTEGRATION_TESTS="(services or spark) and not journey"
LATE_FILES=(tests/test_jvm_judge.py tests/test_m[ae]*.py tests/test_[n-z]*.py)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo "$@"
  else die "need root to run: $* (install it yourself, or run as root)"; fi
}

stamp_ok() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }
lock_stamp() { echo "$1 $(sha256sum "$1" | cut -d' ' -f1)"; }

setup_python() {  # $1: the lock installed. By default the platform's (requirements.lock) into a
  # new .venv or one that has it; any other .venv — the tests' (requirements-dev.lock: the same
  # platform and the test tools), one from before the split — keeps the test tools
  local lock="${1:-}" installed; installed="$(cat "$VENV/.installed" 2>/dev/null || true)"
  if [ -z "$lock" ]; then
    lock=requirements-dev.lock
    [ ! -x "$PY" ] || [ "${installed%% *}" = requirements.lock ] && lock=requirements.lock
  fi
  command -v python3.11 >/dev/null || command -v python3 >/dev/null || die "Python 3.11 not found"
  local python; python="$(command -v python3.11 || command -v python3)"
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
    || die "Python 3.11 is required ($python is $("$python" --version 2>&1))"
  local want; want="$(lock_stamp "$lock")"
  if ! stamp_ok "$VENV/.installed" "$want"; then
    say "installing Python packages ($lock) into .venv"
    [ -x "$PY" ] || "$python" -m venv "$VENV"
    "$PY" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
    "$VENV/bin/uv" pip sync --quiet --python "$PY" "$lock"
    echo "$want" > "$VENV/.installed"
  fi
}

setup_jvm() {
  command -v java >/dev/null || [ -n "${JAVA_HOME:-}" ] \
    || die "Java not found: install a Java 17+ runtime (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "Maven not found: install it (apt-get install maven)"
  # the poms and the JVM sources (jvm/series-judge): a change to either builds again
  local want; want="$(cat jvm/pom.xml jvm/*/pom.xml $(find jvm/*/src -type f 2>/dev/null | LC_ALL=C sort) \
    | sha256sum | cut -d' ' -f1)"
  stamp_ok jvm/lib/.resolved "$want" && return
  say "resolving JVM artifacts with Maven into jvm/lib (Kafka broker, Delta, Spark-Kafka, series judge)"
  rm -rf jvm/lib
  mvn --batch-mode --quiet -Dstyle.color=never -f jvm/pom.xml package
  echo "$want" > jvm/lib/.resolved
}

setup_class_archive() {  # the Spark driver's classes mapped at start (scripts/spark_class_archive.py)
  "$PY" -m scripts.spark_class_archive
}

apt_install_quietly() {  # Debian packages whose own services must not start: the stack (and
  # the tests) start their own Mosquitto, Prometheus and PostgreSQL on their own ports
  local policy=/usr/sbin/policy-rc.d created=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null
    as_root chmod +x "$policy"; created=1
  fi
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  [ -n "$created" ] && as_root rm -f "$policy"
  return 0
}

setup_mosquitto() {
  command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] && return
  say "installing Mosquitto (apt-get install mosquitto)"
  apt_install_quietly mosquitto
}

setup_prometheus() {  # the metrics server of the stack; its promtool checks the shipped rules
  command -v prometheus >/dev/null && command -v promtool >/dev/null && return
  say "installing Prometheus (apt-get install prometheus)"
  apt_install_quietly prometheus
}

setup_dashboard() {
  command -v npm >/dev/null || die "npm not found: install Node.js 22 LTS with npm"
  local lock; lock="$(sha256sum dashboard/package-lock.json | cut -d' ' -f1)"
  if ! stamp_ok dashboard/node_modules/.installed "$lock"; then
    say "installing the dashboard's npm packages (dashboard/package-lock.json)"
    (cd dashboard && npm ci --no-audit --no-fund --loglevel=error)
    echo "$lock" > dashboard/node_modules/.installed
  fi
  local want; want="$(cat dashboard/package-lock.json dashboard/src/* | sha256sum | cut -d' ' -f1)"
  stamp_ok dashboard/dist/.built "$want" && return
  say "building the dashboard (esbuild) into dashboard/dist"
  (cd dashboard && npm run --silent build >/dev/null)
  echo "$want" > dashboard/dist/.built
}

setup_chromium() {  # the browser of the dashboard tests (Playwright drives it; no download)
  [ -x /usr/bin/chromium ] && return
  say "installing Chromium (apt-get install chromium)"
  apt_install_quietly chromium
}

setup_compose_cli() {  # validates docker-compose.yml in the tests (no engine needed)
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null && return
  say "installing the Docker Compose CLI (apt-get install docker-compose)"
  apt_install_quietly docker-compose
}

setup_compose_tools() {  # amtool and mosquitto_sub check the Compose stack's generated files
  command -v amtool >/dev/null && command -v mosquitto_sub >/dev/null && return
  say "installing amtool and the MQTT clients (apt-get install prometheus-alertmanager mosquitto-clients)"
  apt_install_quietly prometheus-alertmanager mosquitto-clients
}

setup_postgresql() {  # the registry's tests run on PostgreSQL too (their fixture starts one)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return
  say "installing PostgreSQL (apt-get install postgresql)"
  apt_install_quietly postgresql
}

at_once() {  # the steps named in "$@" side by side (each a function; "a+b" runs a, then b),
  # each waiting on its own registry — PyPI, Maven Central, npm, Debian (apt takes one step at a
  # time: its steps go in one chain); fails once all ended if any failed
  local step pids=() failed=0 pid
  for step in "$@"; do
    ( set -e; for part in ${step//+/ }; do "$part"; done ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  [ "$failed" -eq 0 ] || die "an install step failed (its error is above)"
}

setup_platform_debs() {
  setup_mosquitto
  setup_prometheus
}

setup_test_debs() {  # what only the tests need of Debian's
  setup_chromium
  setup_compose_cli
  setup_compose_tools
  setup_postgresql
}

setup_dev_python() {  # the platform's packages and the tests' (pytest, Playwright, …)
  setup_python requirements-dev.lock
}

setup_installs() {  # what running the platform needs but the class archive, built from these
  at_once setup_python setup_jvm setup_platform_debs setup_dashboard
}

setup() {  # what running the platform needs
  setup_installs
  setup_class_archive
}

setup_dev_installs() {  # the same with what only the tests need: their packages (the dev lock), a
  # browser, the Compose CLI and the tools that check its files, PostgreSQL
  at_once setup_dev_python setup_jvm setup_platform_debs+setup_test_debs setup_dashboard
}

setup_dev() {
  setup_dev_installs
  setup_class_archive
}

test_suite() {  # the whole suite as four pytest sessions, each with its own share of the free
  # ports, so that the box is never idle: the unit tests (one core's work) beside the class
  # archive's build; then the first-run journey (a whole stack of its own, its pipeline at the
  # others' priority) and the integration tests (Spark, services; their report is live) beside
  # them; once the unit tests are done, the integration tests of the files from LATE_FILES on
  # in a session of their own, in their ports (alone, the integration session leaves a third
  # of the box idle; docs/targets.md "CI run on a clean clone")
  local rc=0 session failed
  setup_dev_installs
  SESSION_LOGS="$(mktemp -d)" SESSIONS=()
  # the replayed lakehouse (tests/conftest.py `replayed`): built once, by the first session
  export SMARTMARKET_TEST_SHARED_DIR="$SESSION_LOGS/shared"
  trap 'for s in "${SESSIONS[@]}"; do pkill -P "$s" || true; kill "$s" || true; done 2>/dev/null
    rm -rf "$SESSION_LOGS"' EXIT
  {
    ISOLATED_STACK_PORTS=20000-24999 "$PY" -m pytest -m "$UNIT_TESTS" -p no:cacheprovider \
      >"$SESSION_LOGS/unit" 2>&1 || echo $? >"$SESSION_LOGS/unit.failed"
    ISOLATED_STACK_PORTS=20000-24999 "$PY" -m pytest -m "$INTEGRATION_TESTS" -p no:cacheprovider \
      "${LATE_FILES[@]}" >"$SESSION_LOGS/late" 2>&1 || echo $? >"$SESSION_LOGS/late.failed"
  } &
  SESSIONS+=($!)
  setup_class_archive  # the journey's pipeline starts from it
  ISOLATED_STACK_PORTS=25000-27999 "$PY" -m pytest -m journey -p no:cacheprovider \
    >"$SESSION_LOGS/journey" 2>&1 || echo $? >"$SESSION_LOGS/journey.failed" &
  SESSIONS+=($!)
  ISOLATED_STACK_PORTS=28000-32767 "$PY" -m pytest -m "$INTEGRATION_TESTS" \
    "${LATE_FILES[@]/#/--ignore=}" || rc=$?
  wait "${SESSIONS[@]}"
  for session in unit late journey; do
    printf '\n==> the %s tests, run beside the tests above:\n' "$session"
    cat "$SESSION_LOGS/$session"
    failed="$SESSION_LOGS/$session.failed"
    [ ! -f "$failed" ] || rc=$((rc != 0 ? rc : $(cat "$failed")))
  done
  return "$rc"
}

cmd="${1:-up}"
[ $# -gt 0 ] && shift
case "$cmd" in
  setup)
    if [ "${1:-}" = "--dev" ]; then setup_dev
    elif [ "${1:-}" = "--analyst" ]; then  # beside what .venv has, until a changed lock's install
      setup
      "$VENV/bin/uv" pip install --quiet --python "$PY" -r requirements-analyst.lock
    else setup; fi ;;
  test)
    [ $# -gt 0 ] || { test_suite; exit 0; }  # the whole suite (set -e: a failure exits with it)
    setup_dev
    if [ "$1" = "--fast" ]; then  # the quick loop: no Spark, no real services
      shift
      exec "$PY" -m pytest -m "$UNIT_TESTS" -n auto "$@"  # a worker per core (pytest-xdist)
    fi
    exec "$PY" -m pytest "$@" ;;
  bench)
    setup
    setup_python requirements-dev.lock  # the load generators (aiohttp, playwright) are dev's
    [ $# -gt 0 ] || die "usage: ./run.sh bench NAME [ARGS] (NAME: $(ls bench/*.py | xargs -n1 basename | sed 's/\.py$//' | grep -v __init__ | tr '\n' ' '))"
    name="$1"; shift
    [ -f "bench/$name.py" ] || die "no benchmark named '$name'"
    exec "$PY" -m "bench.$name" "$@" ;;
  lint)
    setup_python requirements-dev.lock
    "$VENV/bin/ruff" check . && exec "$VENV/bin/ruff" format --check . ;;
  lock)  # the platform's closure, then each extra's on the same versions (only uv is needed)
    [ -x "$VENV/bin/uv" ] || setup_python
    compile=("$VENV/bin/uv" pip compile --quiet pyproject.toml --python-version 3.11 --generate-hashes)
    "${compile[@]}" -o requirements.lock
    "${compile[@]}" --extra dev -c requirements.lock -o requirements-dev.lock
    exec "${compile[@]}" --extra analyst -c requirements.lock -o requirements-analyst.lock ;;
  up)
    setup
    exec "$PY" -m scripts.cli up "$@" ;;
  -h|--help|help)  # the comment block at the top of this file
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
  *)
    [ -x "$PY" ] || die "not set up yet: run ./run.sh first"
    exec "$PY" -m scripts.cli "$cmd" "$@" ;;
esac
