#!/bin/sh
# prerm (deb: remove|upgrade|deconfigure|failed-upgrade) and %preun (rpm:
# $1 = 0 on erase, 1 on upgrade) of kapacitor-squadcast: on removal (not on
# an upgrade) stops and disables the service.
set -e

case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl --no-reload disable --now kapacitor-squadcast.service || true
	fi
	;;
esac
