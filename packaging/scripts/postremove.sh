#!/bin/sh
# otelcol-propeller postremove (.deb postrm, .rpm %postun with 0 on erase): systemd forgets the
# unit. A .deb purge also deletes the persistent queue in /var/lib/otelcol-propeller (an .rpm
# erase keeps it, as rpm keeps data). The user and group stay, as is usual for system users:
# files they own may remain, and a reinstall finds the same ids.
set -e

name=otelcol-propeller

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac

if [ "$1" = purge ]; then
	rm -rf "/var/lib/$name"
fi

exit 0
