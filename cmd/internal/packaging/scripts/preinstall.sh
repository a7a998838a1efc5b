#!/bin/sh
# preinst (deb: install|upgrade [OLD-VERSION]) and %pre (rpm: $1 = 1 on
# install, 2 or more on upgrade) of kapacitor-squadcast: creates the system
# user and group before the files they own are unpacked. The lines below
# are /usr/lib/sysusers.d/kapacitor-squadcast.conf (a test checks they
# match): the daemon's user and group, and the kapacitor user (Kapacitor's)
# in that group, which lets kapacitord open the daemon's socket.
set -e

case "$1" in
abort-upgrade) exit 0 ;;
esac

if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --replace=/usr/lib/sysusers.d/kapacitor-squadcast.conf - <<'SYSUSERS'
u kapacitor-squadcast - "kapacitor-squadcast daemon" /var/lib/kapacitor-squadcast /usr/sbin/nologin
m kapacitor kapacitor-squadcast
SYSUSERS
else
	# No systemd-sysusers (a container, an init other than systemd): the
	# same with shadow's tools. Unlike sysusers, this does not create a
	# missing kapacitor user: install Kapacitor first.
	getent group kapacitor-squadcast >/dev/null ||
		groupadd --system kapacitor-squadcast
	getent passwd kapacitor-squadcast >/dev/null ||
		useradd --system --gid kapacitor-squadcast --no-create-home \
			--home-dir /var/lib/kapacitor-squadcast --shell /usr/sbin/nologin \
			--comment "kapacitor-squadcast daemon" kapacitor-squadcast
	if getent passwd kapacitor >/dev/null; then
		usermod --append --groups kapacitor-squadcast kapacitor
	else
		echo "kapacitor-squadcast: no kapacitor user yet: after installing Kapacitor, run: usermod -aG kapacitor-squadcast kapacitor" >&2
	fi
fi
