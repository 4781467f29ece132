#!/bin/sh
# otelcol-propeller preinstall (.deb preinst, .rpm %pre): the system user and group the service
# runs as, created before the files are unpacked so that the env file can belong to the group.
# No login shell, no home directory created: its home is the state directory, which systemd
# creates (StateDirectory=otelcol-propeller) at the first start.
set -e

name=otelcol-propeller

if ! getent group "$name" >/dev/null 2>&1; then
	groupadd --system "$name"
fi

if ! getent passwd "$name" >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	[ -x "$nologin" ] || nologin=/bin/false
	useradd --system --gid "$name" --no-create-home --home-dir "/var/lib/$name" \
		--shell "$nologin" --comment "otelcol-propeller (Propeller task monitoring)" "$name"
fi

exit 0
