# Shared by scripts/demo and scripts/test: make sure what sitrep needs is installed.
# Postgres and NATS themselves are started by sitrep (see infra/src/devservices.rs) when
# nothing answers on their configured ports; this only installs the binaries it needs for that.

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }

answers() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# Runs apt-get as root, through sudo when we are not root.
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then sudo="sudo"; else
      say "Please install these Debian packages first (as root): $*"; exit 1
    fi
  fi
  say "Installing $* (Debian packages)..."
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need_rust() {
  command -v cargo >/dev/null || { say "sitrep needs the Rust toolchain (cargo): see https://rustup.rs"; exit 1; }
}

has_pg_server() {
  command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1
}

# Installs the Postgres server and nats-server when they are neither running nor installed.
ensure_service_binaries() {
  local pkgs=()
  if ! answers 127.0.0.1 5432 && ! answers 127.0.0.1 55432 && ! has_pg_server; then pkgs+=(postgresql); fi
  if ! answers 127.0.0.1 4222 && ! answers 127.0.0.1 54222 && ! command -v nats-server >/dev/null; then pkgs+=(nats-server); fi
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
}

# The fault suite starts private servers whatever is running: it needs the binaries themselves.
ensure_fault_binaries() {
  local pkgs=()
  if ! has_pg_server; then pkgs+=(postgresql); fi
  if ! command -v nats-server >/dev/null; then pkgs+=(nats-server); fi
  if [ ${#pkgs[@]} -gt 0 ]; then apt_install "${pkgs[@]}"; fi
}

ensure_chromium() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver fonts-dejavu-core
  fi
}

# pdftotext (poppler-utils), which the tests read the SLA report's PDF back with.
ensure_pdftotext() {
  if ! command -v pdftotext >/dev/null; then
    apt_install poppler-utils
  fi
}

# wrk, the HTTP load tool the benchmark puts the dashboard under.
ensure_wrk() {
  command -v wrk >/dev/null || apt_install wrk
}

# A Python with nats-py (the Python examples) and prometheus-client (its OpenMetrics parser
# checks /metrics) under .sitrep/venv, for the tests.
ensure_python_tools() {
  if [ ! -x .sitrep/venv/bin/python ] || ! .sitrep/venv/bin/python -c 'import nats, prometheus_client, jsonschema, aiosmtpd, feedparser' 2>/dev/null; then
    command -v python3 >/dev/null || apt_install python3 python3-venv
    python3 -m venv .sitrep/venv 2>/dev/null || { apt_install python3-venv; python3 -m venv .sitrep/venv; }
    say "Installing nats-py, prometheus-client, jsonschema, aiosmtpd (an SMTP server) and feedparser for the tests (.sitrep/venv)..."
    .sitrep/venv/bin/pip install -q 'nats-py==2.16.0' 'prometheus-client==0.23.1' 'jsonschema==4.26.0' 'aiosmtpd==1.4.6' \
      'feedparser==6.0.14'
  fi
}
