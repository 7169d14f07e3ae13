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
command -v mbsync >/dev/null || need+=(isync)
command -v openssl >/dev/null || need+=(openssl)
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

# A certificate that names localhost, so that clients that check names
# (mbsync, curl with --cacert) can verify it.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >"$WORK/openssl.log" 2>&1 ||
  { echo "openssl could not make a certificate"; echo "0 passed, 1 failed"; exit 1; }

SUB=$(free_port) SUBS=$(free_port) ADMIN=$(free_port) MX=$(free_port) IMAP=$(free_port) IMAPS=$(free_port)
cat >"$WORK/fairway.toml" <<CONF
hostname = "mx.interop.test"
data_dir = "$WORK/data"
[listen]
mx = "127.0.0.1:$MX"
submission = "127.0.0.1:$SUB"
submissions = "127.0.0.1:$SUBS"
imap = "127.0.0.1:$IMAP"
imaps = "127.0.0.1:$IMAPS"
admin = "127.0.0.1:$ADMIN"
[tls]
cert = "$WORK/cert.pem"
key = "$WORK/key.pem"
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
  echo "$PASS" | "${FW[@]}" mailbox add user@acme.example --password-stdin >/dev/null &&
  echo "$PASS" | "${FW[@]}" mailbox add colleague@acme.example --password-stdin >/dev/null ||
  { echo "tenant setup failed"; echo "0 passed, 1 failed"; exit 1; }
# Publish exactly what `dns records` prints, and two outside domains: one
# whose SPF allows loopback, one that forbids it and asks DMARC to reject.
"${FW[@]}" dns records acme.example >"$WORK/zone"
cat >>"$WORK/zone" <<'ZONE'
friend.example. IN TXT "v=spf1 ip4:127.0.0.0/8 -all"
spoofed.example. IN TXT "v=spf1 ip4:192.0.2.1 -all"
_dmarc.spoofed.example. IN TXT "v=DMARC1; p=reject"
ZONE

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
expect_mx() { # expect_mx PATTERN SWAKS-ARGS... (on the MX)
  local pat=$1; shift
  "${MXS[@]}" "$@" >"$WORK/swaks.out" 2>&1
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

# ---- the MX, as remote MTAs (swaks, smtplib) see it ----
MXS=(swaks --server 127.0.0.1 --port "$MX" --timeout 20 --helo client.friend.example)
mx_inbound() { "${MXS[@]}" --from pal@friend.example --to user@acme.example \
  --header "Subject: interop inbound" | tee /dev/stderr | grep -Eq '<[-~] +250 2\.0\.0 OK'; }
check "swaks: mail from outside to a hosted mailbox is accepted on the MX" mx_inbound
check "swaks: unknown user in a hosted domain gets 550 5.1.1" expect_mx '550 5.1.1' --from pal@friend.example --to nobody@acme.example --quit-after RCPT
check "swaks: DMARC p=reject failure gets 550 5.7.1" expect_mx '550 5.7.1' --from ceo@spoofed.example --to user@acme.example
mx_no_auth() {
  $PY - "$MX" <<'PYEOF'
import base64, smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.friend.example")
code, msg = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0user@acme.example\0interop long password").decode())
print(code, msg.decode())
sys.exit(0 if code == 503 and msg.startswith(b"5.5.1") else 1)
PYEOF
}
check "smtplib: AUTH on the MX gets 503 5.5.1" mx_no_auth
# The classic open-relay test list: every form must be refused.
relay_refused() { # relay_refused RCPT [FROM]
  "${MXS[@]}" --from "${2:-spammer@friend.example}" --to "$1" --quit-after RCPT >"$WORK/relay.out" 2>&1
  # The reply to RCPT (or to MAIL, for a refused sender) must be a 5xx.
  grep -A1 -E '^ *-> (RCPT|MAIL)' "$WORK/relay.out" | grep -Eq '^ *<\*\* +5[0-9][0-9] ' &&
    ! grep -A1 -E '^ *-> RCPT' "$WORK/relay.out" | grep -Eq '^ *<- +2' ||
    { cat "$WORK/relay.out"; return 1; }
}
open_relay_list() {
  local bad=0 r
  for r in 'victim@outside.example' 'victim%outside.example@acme.example' 'outside.example!victim@acme.example' \
    '@acme.example:victim@outside.example' '"victim@outside.example"@acme.example' 'victim@outside.example@acme.example' \
    'victim@outside.example.' 'victim@OUTSIDE.example' 'victim@[127.0.0.1]' 'victim@localhost' \
    'victim@acme.example.outside.example' '"victim%outside.example"@acme.example' 'victim@mx.interop.test'; do
    relay_refused "$r" || { echo "RELAYED: $r"; bad=1; }
  done
  relay_refused 'victim@outside.example' 'user@acme.example' || { echo "RELAYED with a hosted sender"; bad=1; }
  relay_refused 'victim@outside.example' '' || { echo "RELAYED with the null sender"; bad=1; }
  return $bad
}
check "swaks: the open-relay test list (15 forms) is refused on the MX" open_relay_list
# swaks rewrites some forms (drops quotes, source routes) before sending;
# smtplib sends these byte for byte.
raw_relay_forms() {
  $PY - "$MX" <<'PYEOF'
import smtplib, sys
forms = ['<@acme.example:victim@outside.example>', '<@acme.example,@x.example:victim@outside.example>',
         '<"victim@outside.example"@acme.example>', '<"victim%outside.example"@acme.example>',
         '<"victim!outside.example"@acme.example>', '<victim@outside.example>', 'victim@outside.example',
         '<USER@ACME.EXAMPLE.>', '<victim@[IPv6:::1]>', '<postmaster@outside.example>']
bad = 0
for f in forms:
    s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
    s.ehlo("client.friend.example")
    s.docmd("MAIL FROM:<spammer@friend.example>")
    code, msg = s.docmd("RCPT TO:" + f)
    print(f, code, msg.decode())
    if code < 500:
        bad += 1
    s.close()
sys.exit(1 if bad else 0)
PYEOF
}
check "smtplib: source routes, quoted local parts and literals, sent verbatim, are refused" raw_relay_forms

# A DMARC aggregate report, gzipped as Google sends it, mailed to the rua
# that `dns records` printed, then read back with `fairway dmarc summary`.
dmarc_report() {
  local begin end gz
  begin=$(($(date +%s) - 86400)) end=$(date +%s)
  gz="$WORK/google.com!acme.example!$begin!$end.xml.gz"
  cat <<XML | gzip -c >"$gz"
<?xml version="1.0" encoding="UTF-8" ?>
<feedback>
  <report_metadata><org_name>google.com</org_name><email>noreply-dmarc-support@google.com</email>
    <report_id>1234567890123456789</report_id><date_range><begin>$begin</begin><end>$end</end></date_range></report_metadata>
  <policy_published><domain>acme.example</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
  <record><row><source_ip>203.0.113.66</source_ip><count>7</count>
    <policy_evaluated><disposition>none</disposition><dkim>fail</dkim><spf>fail</spf></policy_evaluated></row>
    <identifiers><header_from>acme.example</header_from></identifiers>
    <auth_results><spf><domain>acme.example</domain><result>fail</result></spf></auth_results></record>
</feedback>
XML
  "${MXS[@]}" --from noreply-dmarc-support@google.com --to dmarc-reports@mx.interop.test \
    --header "Subject: Report domain: acme.example Submitter: google.com" \
    --attach-type application/gzip --attach "@$gz" | tee /dev/stderr | grep -Eq '<[-~] +250 2\.0\.0 OK' || return 1
  "${FW[@]}" dmarc summary acme.example --since 7d | tee /dev/stderr | grep -q '203.0.113.66'
}
check "swaks: a gzipped DMARC report mailed to the rua shows in fairway dmarc summary" dmarc_report

# ---- local delivery: a user writes to a colleague through submission ----
local_sub() { "${SW[@]}" --port "$SUB" --tls --auth PLAIN --auth-user user@acme.example --auth-password "$PASS" \
  --to colleague@acme.example --header "Subject: interop local" | grep -Eq '<[-~] +250 2.0.0 queued'; }
check "swaks: mail to a hosted colleague is queued on submission" local_sub

# ---- IMAP: imaplib, curl and mbsync read what arrived ----
imap_py() { # imap_py USER MODE: STARTTLS or TLS login, then checks per MODE
  $PY - "$IMAP" "$IMAPS" "$WORK/cert.pem" "$1" "$PASS" "$2" <<'PYEOF'
import imaplib, ssl, sys, time
imap_port, imaps_port, cafile, user, password, mode = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
if mode == "plain-login":
    c = imaplib.IMAP4("localhost", int(imap_port), timeout=20)
    print("capabilities", c.capabilities)
    if "LOGINDISABLED" not in c.capabilities:
        sys.exit("LOGINDISABLED not advertised before STARTTLS")
    try:
        c.login(user, password)
    except imaplib.IMAP4.error as e:
        print("refused:", e)
        sys.exit(0)
    sys.exit("LOGIN accepted before STARTTLS")
if mode.startswith("starttls"):
    c = imaplib.IMAP4("localhost", int(imap_port), timeout=20)
    c.starttls(ssl_context=ctx)
else:
    c = imaplib.IMAP4_SSL("localhost", int(imaps_port), ssl_context=ctx, timeout=20)
c.login(user, password)
want = {"starttls-inbound": "interop inbound", "tls-local": "interop local"}[mode]
for _ in range(100):  # delivery may lag the 250 by a moment
    typ, data = c.select("INBOX")
    typ, data = c.uid("SEARCH", None, "SUBJECT", '"%s"' % want)
    if data[0]:
        break
    time.sleep(0.2)
uids = data[0].split()
if not uids:
    sys.exit("no message with subject %r in INBOX" % want)
typ, data = c.uid("FETCH", uids[0], "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT AUTHENTICATION-RESULTS)])")
print(data)
hdrs = data[0][1].decode()
if want not in hdrs:
    sys.exit("fetched headers lack the subject")
if mode == "starttls-inbound" and "mx.interop.test" not in hdrs:
    sys.exit("no Authentication-Results from mx.interop.test")
c.uid("STORE", uids[0], "+FLAGS", "(\\Flagged)")
typ, data = c.uid("FETCH", uids[0], "(FLAGS)")
print(data)
if b"\\Flagged" not in data[0]:
    sys.exit("flag not stored")
c.logout()
PYEOF
}
check "imaplib: LOGIN before STARTTLS is refused (LOGINDISABLED)" imap_py user@acme.example plain-login
check "imaplib: STARTTLS on 143, the MX's message is in INBOX with Authentication-Results; flag set" \
  imap_py user@acme.example starttls-inbound
check "imaplib: TLS on 993, the colleague has the locally delivered message" imap_py colleague@acme.example tls-local
curl_imaps() { curl -sS --max-time 20 --cacert "$WORK/cert.pem" --user "user@acme.example:$PASS" \
  "imaps://localhost:$IMAPS/INBOX;UID=1" | tee /dev/stderr | grep -q 'Subject: interop inbound'; }
check "curl: imaps fetches the message by UID" curl_imaps
curl_imap_list() { curl -sS --max-time 20 --ssl-reqd --cacert "$WORK/cert.pem" --user "user@acme.example:$PASS" \
  "imap://localhost:$IMAP/" | tee /dev/stderr | grep -q 'Quarantine'; }
check "curl: imap with STARTTLS lists the folders (Quarantine included)" curl_imap_list
curl_imap_badpass() { ! curl -sS --max-time 20 --cacert "$WORK/cert.pem" --user "user@acme.example:wrong password" \
  "imaps://localhost:$IMAPS/INBOX;UID=1"; }
check "curl: imaps with a wrong password is refused" curl_imap_badpass
mbsync_sync() {
  mkdir -p "$WORK/mbsync/local"
  cat >"$WORK/mbsync/rc" <<RC
IMAPAccount fw
Host localhost
Port $IMAPS
User user@acme.example
Pass "$PASS"
SSLType IMAPS
CertificateFile $WORK/cert.pem

IMAPStore fw-remote
Account fw

MaildirStore fw-local
Path $WORK/mbsync/local/
Inbox $WORK/mbsync/local/INBOX

Channel fw
Far :fw-remote:
Near :fw-local:
Patterns INBOX
Create Near
Sync Pull
SyncState *
RC
  mbsync -c "$WORK/mbsync/rc" fw || return 1
  local n flagged
  n=$(ls "$WORK/mbsync/local/INBOX/cur" "$WORK/mbsync/local/INBOX/new" 2>/dev/null | grep -c ',U=')
  flagged=$(ls "$WORK/mbsync/local/INBOX/cur" "$WORK/mbsync/local/INBOX/new" 2>/dev/null | grep -c ':2,[A-Z]*F')
  echo "mbsync pulled $n message(s), $flagged flagged"
  [ "$n" -ge 1 ] && [ "$flagged" -ge 1 ]
}
check "mbsync: syncs the INBOX and sees the message and its flag" mbsync_sync

# ---- a tenant leaves as one tar that GNU tar reads ----
export_tar() {
  "${FW[@]}" tenant export acme -o "$WORK/acme.tar" || return 1
  tar -tf "$WORK/acme.tar" >"$WORK/acme.list" || return 1
  head -20 "$WORK/acme.list"
  grep -qx 'fairway-tenant.json' "$WORK/acme.list" && grep -q '^mail/acme.example/user/cur/' "$WORK/acme.list"
}
check "tar: fairway tenant export writes the directory entries and the Maildirs" export_tar

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
