#!/bin/sh
# otelcol-propeller postinstall (.deb postinst with "configure", .rpm %post with 1 on install
# and 2 on upgrade): the env file readable by the service's group only (it holds the MQTT
# password), systemd told about the unit, and on upgrade a running service restarted. A fresh
# install neither enables nor starts the service: the env file must be filled in first.
set -e

name=otelcol-propeller
envfile=/etc/$name/$name.env

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

if [ -f "$envfile" ]; then
	chown "root:$name" "$envfile"
	chmod 0640 "$envfile"
fi

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# .deb: configure <old version> on upgrade; .rpm: 2 on upgrade.
	if [ "$1" = 2 ] || { [ "$1" = configure ] && [ -n "$2" ]; }; then
		systemctl try-restart "$name.service" >/dev/null 2>&1 || true
	fi
fi

if [ "$1" = 1 ] || { [ "$1" = configure ] && [ -z "$2" ]; }; then
	echo "$name: fill in $envfile, then: systemctl enable --now $name"
fi

exit 0
