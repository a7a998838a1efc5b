# unit.awk: examples/kapacitor-squadcast.service -> the unit the package
# installs. Its header (manual install steps) gives way to a short one, its
# ExecStart= (continued over several lines) runs /usr/bin/kapacitor-squadcast
# on the packaged config, and the environment file becomes optional.
BEGIN { header = 1 }
header && /^\[Unit\]/ {
	print "# kapacitor-squadcast.service, installed by the kapacitor-squadcast package."
	print "# Setup: /usr/share/doc/kapacitor-squadcast/docs/install.md. The daemon"
	print "# reads /etc/kapacitor-squadcast/kapacitor-squadcast.toml; override this"
	print "# unit with `systemctl edit kapacitor-squadcast`."
	header = 0
}
header { next }
/^ExecStart=/ {
	print "ExecStart=/usr/bin/kapacitor-squadcast serve --config /etc/kapacitor-squadcast/kapacitor-squadcast.toml"
	skipping = /\\$/
	next
}
skipping { skipping = /\\$/; next }
/^EnvironmentFile=\// {
	sub(/^EnvironmentFile=/, "EnvironmentFile=-")
}
/^# SQUADCAST_WEBHOOK_URL \(the secret webhook URL\) comes from this file/ {
	print "# Optional environment (e.g. GOMEMLIMIT); the webhook URL is in the"
	print "# url-file the config names. systemd reads this file as root."
	getline
	next
}
/^# --kapacitor-url lets a restarted daemon/ {
	print "# The config's kapacitor-url lets a restarted daemon bring back the tasks"
	print "# Kapacitor left on its previous connection (it never reconnects a UDF)."
	getline
	next
}
/^# Memory: to bound it, add --memory-limit/ {
	print "# Memory: to bound it, set memory-limit in the config (Go's soft limit,"
	print "# e.g. \"256MiB\"; see docs/operations.md, \"Memory\"), below any MemoryMax="
	print "# set here, with room for the mapped outbox file."
	getline
	getline
	next
}
{ print }
