#!/bin/sh
# otelcol-propeller preremove (.deb prerm with "remove", .rpm %preun with 0 on erase): stop and
# disable the service when the package goes away; an upgrade keeps it running.
set -e

name=otelcol-propeller

case "$1" in
remove | 0)
	if [ -d /run/systemd/system ]; then
		systemctl disable --now "$name.service" >/dev/null 2>&1 || true
	fi
	;;
esac

exit 0
