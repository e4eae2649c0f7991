#!/bin/sh
# Uploaded by ansible.builtin.script through put_file, then run in the container.
printf '%s\n' "$@" > /tmp/from-script
echo "script ran: $*"
