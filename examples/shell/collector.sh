#!/usr/bin/env bash
# Reports the health of this host to sitrep over HTTP, with bash and curl only.
#
#   SITREP_API_KEY=... SITREP_SYSTEM=derecho examples/shell/collector.sh
#   SITREP_SYSTEM=derecho examples/shell/collector.sh --print    # show the JSON, send nothing
#
# One report for component host/<short hostname> (or $SITREP_COMPONENT): the load from
# /proc/loadavg against the CPU count, and how full the root filesystem is (df -P /). The status
# is failed when / is at least 95% full, degraded at 90% or when the 1-minute load is above twice
# the CPUs, else ok. It POSTs to $SITREP_URL/api/v1/reports, prints the HTTP status and the
# answer, and exits 0 when sitrep accepted the report (202), else 1.
#
# Environment:
#   SITREP_SYSTEM       the system this host belongs to (required)
#   SITREP_API_KEY      a sitrep API key allowed to report for that system (required to send)
#   SITREP_URL          sitrep's address (default http://127.0.0.1:8080)
#   SITREP_COMPONENT    the component (default host/<short hostname>)
#   SITREP_TTL_SECONDS  how long the report stays fresh (default 180: three runs of a
#                       once-a-minute cron job)
set -euo pipefail
export LC_ALL=C

die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 1; }

print_only=false
case "${1:-}" in
  "") ;;
  --print) print_only=true ;;
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; exit 0 ;;
  *) die "unknown option ${1}; the only option is --print (see --help)" ;;
esac

system="${SITREP_SYSTEM:-}"
[[ -n "$system" ]] || die "set SITREP_SYSTEM to the system this host belongs to (for example derecho)"
[[ "$system" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]] \
  || die "SITREP_SYSTEM '$system' must be 1-64 ASCII letters, digits, '-' or '_', starting with a letter or digit"

host="$(hostname -s 2>/dev/null || hostname)"
host="${host%%.*}"
host="${host//[^A-Za-z0-9._@+-]/-}"
component="${SITREP_COMPONENT:-host/${host}}"
[[ "$component" =~ ^[A-Za-z0-9._@+-]+(/[A-Za-z0-9._@+-]+)*$ && ${#component} -le 200 ]] \
  || die "component '$component' must be a '/'-separated path of ASCII letters, digits, '-', '_', '.', '@', '+' (at most 200)"

ttl="${SITREP_TTL_SECONDS:-180}"
if ! [[ "$ttl" =~ ^[0-9]{1,7}$ ]] || (( 10#$ttl < 1 || 10#$ttl > 2592000 )); then
  die "SITREP_TTL_SECONDS must be a whole number of seconds from 1 to 2592000"
fi
ttl=$((10#$ttl))

# A decimal such as 1.98 as a whole number of hundredths (198).
hundredths() {
  local int="${1%%.*}" frac="0"
  if [[ "$1" == *.* ]]; then frac="${1#*.}"; fi
  frac="${frac}00"
  printf '%d' "$(( 10#${int:-0} * 100 + 10#${frac:0:2} ))"
}
# Hundredths as a decimal with two places (198 -> 1.98).
decimal() { printf '%d.%02d' "$(( $1 / 100 ))" "$(( $1 % 100 ))"; }

read -r load1 load5 load15 _ < /proc/loadavg
cpus="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN)"
[[ "$cpus" =~ ^[0-9]+$ && "$cpus" -ge 1 ]] || die "cannot tell how many CPUs this host has"

# df -P prints a header and one line: filesystem, 1024-blocks, used, available, capacity, mount.
{ read -r _; read -r _ _ used avail _; } < <(df -P -k /)
[[ "$used" =~ ^[0-9]+$ && "$avail" =~ ^[0-9]+$ ]] || die "cannot read the root filesystem's use from df -P -k /"
total=$(( used + avail ))
root_pct=0   # in hundredths of a percent
if (( total > 0 )); then root_pct=$(( used * 10000 / total )); fi   # rounded down

load1_h="$(hundredths "$load1")"
status="ok"
reasons=()
if (( root_pct >= 9500 )); then
  status="failed"; reasons+=("/ is $(decimal "$root_pct")% full")
elif (( root_pct >= 9000 )); then
  status="degraded"; reasons+=("/ is $(decimal "$root_pct")% full")
fi
if (( load1_h > 2 * cpus * 100 )); then
  if [[ "$status" == "ok" ]]; then status="degraded"; fi
  reasons+=("load ${load1} is above twice the ${cpus} CPUs")
fi
if (( ${#reasons[@]} )); then
  message="${reasons[0]}"
  if (( ${#reasons[@]} > 1 )); then message+="; ${reasons[1]}"; fi
else
  message="load ${load1} on ${cpus} CPUs; / at $(decimal "$root_pct")%"
fi

observed_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
# Every string above is made of characters that need no JSON escaping (checked or built here).
json="$(printf '{"system":"%s","component":"%s","status":"%s","observed_at":"%s","message":"%s",' \
  "$system" "$component" "$status" "$observed_at" "$message")"
json+="$(printf '"metrics":{"load_1m":%s,"load_5m":%s,"load_15m":%s,"cpus":%d,"root_used_pct":%s},' \
  "$(decimal "$load1_h")" "$(decimal "$(hundredths "$load5")")" "$(decimal "$(hundredths "$load15")")" \
  "$cpus" "$(decimal "$root_pct")")"
json+="$(printf '"labels":{"kind":"host"},"ttl_seconds":%d}' "$ttl")"

if $print_only; then
  printf '%s\n' "$json"
  exit 0
fi

[[ -n "${SITREP_API_KEY:-}" ]] || die "set SITREP_API_KEY to a sitrep API key allowed to report for ${system}"
url="${SITREP_URL:-http://127.0.0.1:8080}"
url="${url%/}/api/v1/reports"
nanos="$(date +%s%N)"
[[ "$nanos" =~ ^[0-9]+$ ]] || nanos="$(date +%s)000000000"   # a date without %N

# The key goes to curl on its standard input, so it never shows in the process list.
if ! response="$(printf 'Authorization: Bearer %s\n' "$SITREP_API_KEY" | curl -sS --max-time 30 \
    -X POST "$url" -H @- \
    -H 'Content-Type: application/json' \
    -H "Idempotency-Key: ${host}-shell-${nanos}" \
    --data-binary "$json" \
    -w '\n%{http_code}')"; then
  die "could not reach sitrep at ${url}"
fi
code="${response##*$'\n'}"
body="${response%$'\n'*}"
printf 'HTTP %s %s\n' "$code" "$body"
[[ "$code" == "202" ]]
