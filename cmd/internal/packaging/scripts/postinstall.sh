#!/bin/sh
# postinst (deb: configure [OLD-VERSION]) and %post (rpm: $1 = 1 on install,
# 2 or more on upgrade) of kapacitor-squadcast: creates its directories,
# reloads systemd, and on an upgrade restarts the service if it was
# running. A first install never starts it: it has no webhook URL yet.
set -e

upgrade=
case "$1" in
configure) [ -z "$2" ] || upgrade=yes ;;
[0-9]*) [ "$1" -lt 2 ] || upgrade=yes ;;
*) exit 0 ;;
esac

if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/kapacitor-squadcast.conf
else
	install -d -m 0750 -o kapacitor-squadcast -g kapacitor-squadcast /run/kapacitor-squadcast
	install -d -m 0700 -o kapacitor-squadcast -g kapacitor-squadcast /var/lib/kapacitor-squadcast
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload
	if [ -n "$upgrade" ]; then
		# try-restart restarts the service only if it is running.
		systemctl try-restart kapacitor-squadcast.service
	fi
fi

if [ -z "$upgrade" ]; then
	cat <<'NEXT'
kapacitor-squadcast is installed but not started: it has no webhook URL yet.
Next steps (/usr/share/doc/kapacitor-squadcast/docs/install.md):
  1. Put your Squadcast webhook URL in a file only the daemon can read:
       printf '%s\n' 'https://api.squadcast.com/v1/incidents/kapacitor/KEY' |
         sudo install -m 0600 -o kapacitor-squadcast -g kapacitor-squadcast \
           /dev/stdin /etc/kapacitor-squadcast/default.url
  2. Append /usr/share/doc/kapacitor-squadcast/examples/kapacitor.conf
     to /etc/kapacitor/kapacitor.conf.
  3. sudo systemctl enable --now kapacitor-squadcast
     sudo systemctl restart kapacitor
NEXT
fi
