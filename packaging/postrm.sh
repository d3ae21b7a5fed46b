#!/bin/sh
# Removing the package leaves each person's keys, settings, certificates and audit log where they
# are, under their own home directory; this says where.
set -e
case "${1:-remove}" in
    remove|purge|0)
        echo "Gatehouse is removed. Your keys (in the OS keychain and ~/.config/gatehouse/keys.toml), settings,"
        echo "certificates and audit log stay in ~/.config/gatehouse, and any models you added in"
        echo "~/.local/share/gatehouse; delete those directories to remove them too."
        ;;
esac
exit 0
