#!/usr/bin/env bash
# Interop suite: drives the built fairway binary with clients nobody on this
# project wrote (swaks, curl, dkimpy, dnslib), on 127.0.0.1 and a temporary
# data dir. Each check prints its name and result; the last line is
# "N passed, N failed" and the exit status is non-zero if anything failed.
# Usage: run.sh path/to/fairway
set -u
BIN=$(readlink -f "${1:?usage: run.sh path/to/fairway}")
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3 # Debian's python packages are only visible to it

# ---- prerequisites (Debian packages; installed once if missing) ----
need=()
command -v swaks >/dev/null || need+=(swaks)
command -v curl >/dev/null || need+=(curl)
$PY -c 'import dkim' 2>/dev/null || need+=(python3-dkim)
$PY -c 'import dnslib' 2>/dev/null || need+=(python3-dnslib)
command -v smtp-source >/dev/null || [ -x /usr/sbin/smtp-source ] || need+=(postfix)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix's package would start a system Postfix on port 25: keep every
  # service down while installing, and skip its configuration questions.
  policy=/usr/sbin/policy-rc.d
  made_policy=
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made_policy=1; fi
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null
  { apt-get update -q && apt-get install -y -q "${need[@]}"; } >/tmp/fairway-interop-apt.log 2>&1
  rc=$?
  [ -n "$made_policy" ] && rm -f $policy
  [ $rc -eq 0 ] ||
    { echo "apt-get install failed (see /tmp/fairway-interop-apt.log)"; echo "0 passed, 1 failed"; exit 1; }
fi
SMTP_SOURCE=$(command -v smtp-source || echo /usr/sbin/smtp-source)

WORK=$(mktemp -d /tmp/fairway-interop.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  [ "${KEEP:-}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

passed=0 failed=0 nchecks=0
check() { # check NAME COMMAND...: run, report (output kept in $WORK/check-N.out)
  local name=$1; shift
  nchecks=$((nchecks + 1))
  if "$@" >"$WORK/check.out" 2>&1; then
    cp "$WORK/check.out" "$WORK/check-$nchecks.out"
    echo "PASS  $name"; passed=$((passed + 1))
  else
    cp "$WORK/check.out" "$WORK/check-$nchecks.out"
    echo "FAIL  $name"; sed 's/^/      | /' "$WORK/check.out" | tail -15; failed=$((failed + 1))
  fi
}
wait_for() { # wait_for SECONDS COMMAND...: poll until it succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---- outside peers: DNS (dnslib) and a sink for outbound mail ----
mkdir -p "$WORK/sink"
: >"$WORK/zone"
$PY "$HERE/dns_server.py" "$WORK/zone" "$WORK/dns.port" >"$WORK/dns.log" 2>&1 & PIDS+=($!)
$PY "$HERE/smtp_sink.py" "$WORK/sink" "$WORK/sink.port" >"$WORK/sink.log" 2>&1 & PIDS+=($!)
wait_for 10 test -s "$WORK/dns.port" && wait_for 10 test -s "$WORK/sink.port" ||
  { echo "peers did not start"; echo "0 passed, 1 failed"; exit 1; }

SUB=$(free_port) SUBS=$(free_port) ADMIN=$(free_port)
cat >"$WORK/fairway.toml" <<CONF
hostname = "mx.interop.test"
data_dir = "$WORK/data"
[listen]
mx = ""
submission = "127.0.0.1:$SUB"
submissions = "127.0.0.1:$SUBS"
imap = ""
imaps = ""
admin = "127.0.0.1:$ADMIN"
[dns]
resolver = "127.0.0.1:$(cat "$WORK/dns.port")"
[[route]]
domain = "*"
to = "127.0.0.1:$(cat "$WORK/sink.port")"
[dkim]
publish_delay = "1s"
check_interval = "1s"
CONF
FW=("$BIN" --config "$WORK/fairway.toml")
"$BIN" serve --config "$WORK/fairway.toml" >"$WORK/fairway.log" 2>&1 & PIDS+=($!)
wait_for 20 test -S "$WORK/data/admin.sock" || { echo "fairway did not start"; tail "$WORK/fairway.log"; echo "0 passed, 1 failed"; exit 1; }

# ---- a tenant, as an operator sets one up ----
PASS='interop long password'
"${FW[@]}" tenant add acme >/dev/null &&
  "${FW[@]}" domain add acme.example --tenant acme >/dev/null &&
  echo "$PASS" | "${FW[@]}" mailbox add user@acme.example --password-stdin >/dev/null ||
  { echo "tenant setup failed"; echo "0 passed, 1 failed"; exit 1; }
# Publish exactly what `dns records` prints.
"${FW[@]}" dns records acme.example >"$WORK/zone"

# ---- admin API with curl ----
admin_socket() { curl -sf --unix-socket "$WORK/data/admin.sock" http://fairway/v1/tenants | grep -q '"acme"'; }
check "curl: admin API over the unix socket lists the tenant" admin_socket
admin_tcp_refuses() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN/v1/tenants")" = 401 ]; }
check "curl: admin API over TCP without a token is 401" admin_tcp_refuses
metrics() { curl -sf "http://127.0.0.1:$ADMIN/metrics" | grep -q 'fairway_queue_depth{state="ready",tenant="acme"}'; }
check "curl: /metrics has per-tenant queue depth" metrics
check "fairway dns check sees the published records" "${FW[@]}" dns check acme.example

# Keys activate once their records are seen and publish_delay (1s) passed.
dkim_active() { "${FW[@]}" dkim status acme.example --json |
  $PY -c 'import json,sys; ks=json.load(sys.stdin); sys.exit(0 if sum(k["state"]=="active" for k in ks)>=2 else 1)'; }
check "DKIM keys become active once published" wait_for 30 dkim_active

# ---- submission with swaks and curl ----
SW=(swaks --server 127.0.0.1 --from user@acme.example --to someone@remote.example --timeout 20)
MSGS=0
sub_starttls() { "${SW[@]}" --port "$SUB" --tls --auth PLAIN --auth-user user@acme.example --auth-password "$PASS" \
  --header "Subject: interop starttls" | tee /dev/stderr | grep -Eq '<[-~] +250 2.0.0 queued'; }
check "swaks: 587 STARTTLS + AUTH PLAIN is queued" sub_starttls && MSGS=$((MSGS + 1))
sub_tls() { "${SW[@]}" --port "$SUBS" --tlsc --auth LOGIN --auth-user user@acme.example --auth-password "$PASS" \
  --header "Subject: interop implicit tls" | tee /dev/stderr | grep -Eq '<[-~] +250 2.0.0 queued'; }
check "swaks: 465 implicit TLS + AUTH LOGIN is queued" sub_tls && MSGS=$((MSGS + 1))
curl_sub() {
  printf 'From: user@acme.example\r\nTo: someone@remote.example\r\nSubject: interop curl\r\n\r\nsent by curl\r\n' >"$WORK/curl.eml"
  curl -sS --url "smtp://127.0.0.1:$SUB" --ssl-reqd -k --user "user@acme.example:$PASS" \
    --mail-from user@acme.example --mail-rcpt someone@remote.example --upload-file "$WORK/curl.eml"
}
check "curl: 587 STARTTLS + AUTH submits" curl_sub && MSGS=$((MSGS + 1))
curls_sub() {
  curl -sS --url "smtps://127.0.0.1:$SUBS" -k --user "user@acme.example:$PASS" \
    --mail-from user@acme.example --mail-rcpt someone@remote.example --upload-file "$WORK/curl.eml"
}
check "curl: 465 implicit TLS + AUTH submits" curls_sub && MSGS=$((MSGS + 1))

# The contract's refusals, as swaks sees them.
expect() { # expect PATTERN SWAKS-ARGS...
  local pat=$1; shift
  "${SW[@]}" "$@" >"$WORK/swaks.out" 2>&1
  grep -q "$pat" "$WORK/swaks.out" || { cat "$WORK/swaks.out"; return 1; }
}
# swaks never sends AUTH a server does not offer (fairway offers it only
# after STARTTLS); python's smtplib sends it anyway and sees the reply.
auth_before_tls() {
  $PY - "$SUB" <<'PYEOF'
import base64, smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("interop.test")
code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0user@acme.example\0interop long password").decode())
print(code, msg.decode())
sys.exit(0 if code == 530 and msg.startswith(b"5.7.0") else 1)
PYEOF
}
check "smtplib: AUTH before STARTTLS gets 530 5.7.0" auth_before_tls
check "swaks: MAIL without AUTH gets 530 5.7.0" expect '530 5.7.0' --port "$SUB" --tls
check "swaks: wrong password gets 535 5.7.8" expect '535 5.7.8' --port "$SUB" --tls --auth PLAIN \
  --auth-user user@acme.example --auth-password 'not the password'
check "swaks: bare local part gets 535 5.7.8" expect '535 5.7.8' --port "$SUB" --tls --auth PLAIN \
  --auth-user user --auth-password "$PASS"
check "swaks: sending as another domain gets 553 5.7.1" expect '553 5.7.1' --port "$SUB" --tls --auth PLAIN \
  --auth-user user@acme.example --auth-password "$PASS" --from ceo@other.example
curl_nossl() { ! curl -sS --url "smtp://127.0.0.1:$SUB" --user "user@acme.example:$PASS" \
  --mail-from user@acme.example --mail-rcpt someone@remote.example --upload-file "$WORK/curl.eml"; }
check "curl: AUTH without TLS is refused" curl_nossl

# ---- delivery to the sink, signatures checked with dkimpy ----
delivered() { [ "$(ls "$WORK/sink"/*.eml 2>/dev/null | wc -l)" -ge "$MSGS" ]; }
check "all $MSGS submitted messages reach the remote sink" wait_for 60 delivered
check "dkimpy verifies every delivered message against the published records" \
  $PY "$HERE/dkim_verify.py" "$WORK/zone" "$WORK"/sink/*.eml

# ---- bulk from an application server: Postfix's smtp-source, no AUTH ----
# The tenant registers loopback as its client network; loopback may skip
# STARTTLS. smtp-source speaks plain SMTP, 10 sessions in parallel.
BULK=2000
bulk() {
  "${FW[@]}" tenant update acme --network 127.0.0.1/32 >/dev/null || return 1
  "$SMTP_SOURCE" -s 10 -m $BULK -l 2048 -M app.acme.example -f app@acme.example -t bulk@remote.example "127.0.0.1:$SUB"
}
check "smtp-source: $BULK messages from the tenant's network submit without AUTH" bulk
bulk_delivered() { [ "$(grep -l 'bulk@remote.example' "$WORK"/sink/*.env 2>/dev/null | wc -l)" -ge $BULK ]; }
check "all $BULK bulk messages reach the sink, none lost" wait_for 120 bulk_delivered
bulk_signed() {
  local files
  files=$(grep -l 'bulk@remote.example' "$WORK"/sink/*.env | sed 's/\.env$/.eml/')
  [ "$(echo "$files" | wc -l)" -eq $BULK ] || { echo "$(echo "$files" | wc -l) bulk messages, want exactly $BULK"; return 1; }
  # shellcheck disable=SC2086
  $PY "$HERE/dkim_verify.py" -q "$WORK/zone" $files
}
check "dkimpy verifies the signatures of every bulk message, no duplicates" bulk_signed

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
