#!/bin/sh
# cargo's runner for this board: boots the image ($1) on QEMU's mps2-an385 with user
# networking, the firmware's port 80 forwarded to 127.0.0.1:${C2D_HTTP_FORWARD:-8380}, and
# the defmt log (semihosting, on QEMU's stdout) decoded by defmt-print when it is installed.
# Quit with Ctrl-A X.
elf="$1"
shift
port="${C2D_HTTP_FORWARD:-8380}"
set -- qemu-system-arm -M mps2-an385 -nographic \
  -semihosting-config enable=on,target=native \
  -nic "user,hostfwd=tcp:127.0.0.1:${port}-:80" \
  -kernel "$elf" "$@"
echo "QEMU mps2-an385: curl http://127.0.0.1:${port}/click2dial/calls (Ctrl-A X quits)" >&2
if command -v defmt-print >/dev/null 2>&1; then
  "$@" | defmt-print -e "$elf"
else
  echo "defmt-print not found (cargo install defmt-print --locked): raw defmt frames follow" >&2
  exec "$@"
fi
