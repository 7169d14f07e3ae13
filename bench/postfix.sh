#!/bin/bash
# postfix.sh runs a private, throwaway Postfix instance for the bench suite's
# side-by-side figures: its own main.cf/master.cf, queue and data directories
# all under DIR, listening only on 127.0.0.1:PORT, relaying every domain to
# the bench sinks. It never reads or touches /etc/postfix's configuration nor
# the system service (Debian's postfix package provides only the programs).
#
#   postfix.sh check
#   postfix.sh start DIR PORT ROUTES   # ROUTES: "domain=host:port,..." ("*" = everything else)
#   postfix.sh flush DIR               # make every queued message due now
#   postfix.sh kill  DIR               # SIGKILL the master and its children (crash scenario)
#   postfix.sh stop  DIR
set -eu

PATH=/usr/sbin:/usr/bin:/sbin:/bin
verb=${1:-}

need() {
	for p in /usr/sbin/postfix /usr/sbin/postconf /usr/lib/postfix/sbin/master; do
		[ -x "$p" ] || { echo "postfix not installed: $p missing (apt-get install postfix)" >&2; exit 2; }
	done
	id postfix >/dev/null 2>&1 || { echo "no 'postfix' user" >&2; exit 2; }
	getent group postdrop >/dev/null 2>&1 || { echo "no 'postdrop' group" >&2; exit 2; }
	[ "$(id -u)" = 0 ] || { echo "a private postfix instance needs root here (its daemons run as user postfix)" >&2; exit 2; }
}

master_pid() {
	f="$1/queue/pid/master.pid"
	[ -f "$f" ] && tr -d ' \n' < "$f" || true
}

case "$verb" in
check)
	need
	echo "postfix $(postconf -d -h mail_version) available"
	;;
start)
	need
	dir=$2 port=$3 routes=${4:-}
	mkdir -p "$dir/conf" "$dir/queue" "$dir/data"
	chmod 755 "$dir" "$dir/conf"
	chown postfix "$dir/data"
	relayhost="" transport=""
	IFS=','
	for r in $routes; do
		d=${r%%=*} to=${r#*=}
		host=${to%:*} p=${to##*:}
		if [ "$d" = "*" ]; then
			relayhost="[$host]:$p"
		else
			transport="$transport {$d = smtp:[$host]:$p}"
		fi
	done
	unset IFS
	[ -n "$relayhost" ] || { echo "no \"*\" route given" >&2; exit 2; }
	# An empty inline: table is a lookup error, so no table at all then.
	transport_maps=""
	[ -z "$transport" ] || transport_maps="inline:{$transport }"
	if [ ! -f "$dir/conf/main.cf" ]; then
		cat > "$dir/conf/main.cf" <<EOCF
compatibility_level = 3.6
myhostname = postfix.bench.invalid
mydomain = bench.invalid
myorigin = bench.invalid
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
relayhost = $relayhost
transport_maps = $transport_maps
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtpd_relay_restrictions = permit_mynetworks, reject
smtp_dns_support_level = disabled
disable_dns_lookups = yes
EOCF
		cat > "$dir/conf/master.cf" <<EOCF
127.0.0.1:$port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOCF
	fi
	if ! postfix -c "$dir/conf" start >"$dir/start.log" 2>&1; then
		cat "$dir/start.log" >&2
		tail -5 "$dir/maillog" >&2 2>/dev/null || true
		echo "(postfix start failed; its daemons run as user postfix and need every directory above $dir searchable)" >&2
		exit 1
	fi
	# Wait (bounded) for the smtpd port.
	i=0
	while [ $i -lt 100 ]; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then exit 0; fi
		i=$((i + 1))
		sleep 0.1
	done
	echo "postfix did not listen on 127.0.0.1:$port; see $dir/maillog" >&2
	exit 1
	;;
kill)
	dir=$2
	pid=$(master_pid "$dir")
	[ -n "$pid" ] || { echo "no master pid in $dir" >&2; exit 1; }
	for c in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do kill -9 "$c" 2>/dev/null || true; done
	kill -9 "$pid"
	i=0
	while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null; do i=$((i + 1)); sleep 0.1; done
	;;
flush)
	dir=$2
	postqueue -c "$dir/conf" -f
	;;
stop)
	dir=$2
	[ -f "$dir/conf/main.cf" ] || exit 0
	postfix -c "$dir/conf" stop >/dev/null 2>&1 || true
	pid=$(master_pid "$dir")
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		for c in $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do kill -9 "$c" 2>/dev/null || true; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	;;
*)
	echo "usage: $0 check | start DIR PORT ROUTES | flush DIR | kill DIR | stop DIR" >&2
	exit 2
	;;
esac
