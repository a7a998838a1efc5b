#!/bin/sh
# postrm (deb: remove|purge|upgrade|...) and %postun (rpm: $1 = 0 on erase,
# 1 on upgrade) of kapacitor-squadcast. Removing the package leaves the
# configuration (/etc/kapacitor-squadcast, the webhook URL file included)
# and the data (/var/lib/kapacitor-squadcast: undelivered events, alert
# state). Purging it (Debian: apt purge, dpkg --purge) removes both; the
# user and group stay, as Debian's packages leave theirs.
set -e

case "$1" in
purge)
	rm -rf /etc/kapacitor-squadcast /var/lib/kapacitor-squadcast /run/kapacitor-squadcast
	;;
esac

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	fi
	;;
esac
