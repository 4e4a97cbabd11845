# shellcheck shell=sh
# tests/lib/observe.sh - helpers for the observability tests (issue 13).
# Source after tests/lib/netns.sh.
#
#   prom_start NS TARGET            start Prometheus inside NS (its loopback, port 9090),
#                                   scraping TARGET (ADDR:PORT) every second; its own
#                                   config and storage in $LDT_TMP; killed by the trap
#   prom_dump NS FILE               every series of the luadivert job, from the query API
#   prom_value FILE NAME [L=V...]   the value of NAME{L=V,...} in that dump (summed)
#   prom_has NS NAME VALUE [L=V...] true once Prometheus holds that value

PROM_PORT=9090

prom_start() {
	_pns=$1; _ptarget=$2
	mkdir -p "$LDT_TMP/prom-data"
	cat >"$LDT_TMP/prometheus.yml" <<PROMEOF
global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1h
scrape_configs:
  - job_name: luadivert
    static_configs:
      - targets: ['$_ptarget']
PROMEOF
	# bounded lifetime: timeout(1) ends it even if the trap never runs
	bg_ns "$_pns" timeout 120 prometheus --config.file="$LDT_TMP/prometheus.yml" \
		--storage.tsdb.path="$LDT_TMP/prom-data" \
		--web.listen-address="127.0.0.1:$PROM_PORT" \
		--storage.tsdb.retention.time=1h >"$LDT_TMP/prometheus.log" 2>&1
	PROM_PID=$LDT_LAST_PID
	wait_until 20 _prom_ready "$_pns" || { tail -n 20 "$LDT_TMP/prometheus.log" >&2; fail "prometheus did not start"; }
}

_prom_ready() {
	ip netns exec "$1" curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null
}

# prom_dump NS FILE: every series of job luadivert as Prometheus has it now,
# as lines "NAME LABEL=VALUE ... SAMPLE" (one python run; lookups are awk)
prom_dump() {
	ip netns exec "$1" curl -sf --max-time 5 "http://127.0.0.1:$PROM_PORT/api/v1/query" \
		--data-urlencode 'query={job="luadivert"}' >"$2.json" &&
		python3 "$LDT_ROOT/tests/lib/prom_value.py" <"$2.json" >"$2"
}

# prom_value FILE NAME [LABEL=VALUE...]: the sum of the matching series in a dump
prom_value() {
	_pvf=$1; _pvn=$2; shift 2
	awk -v name="$_pvn" -v want="$*" '
		$1 != name { next }
		{ n = split(want, w, " "); ok = 1
		  for (i = 1; i <= n; i++) { f = 0; for (j = 2; j < NF; j++) if ($j == w[i]) f = 1; if (!f) ok = 0 }
		  if (ok) { s += $NF; any = 1 } }
		END { if (any) printf "%.15g\n", s }' "$_pvf"
}

# prom_has NS NAME VALUE [LABEL=VALUE...]: true once Prometheus has scraped VALUE
prom_has() {
	_phn=$1; _phm=$2; _phv=$3; shift 3
	prom_dump "$_phn" "$LDT_TMP/prom-wait" &&
		[ "$(prom_value "$LDT_TMP/prom-wait" "$_phm" "$@")" = "$_phv" ]
}
