#!/bin/sh
# cargo's runner for this board: boots the image ($1) on QEMU's mps2-an385 with user
# networking, the firmware's port 80 forwarded to 127.0.0.1:${C2D_HTTP_FORWARD:-8380}, and
# the defmt log (semihosting, on QEMU's stdout) decoded by defmt-print when it is installed.
# The device is provisioned as an installer would at flashing time: the provisioning page
# (`C2DS` and a 32-byte device secret, src/storage.rs) comes from $C2D_PROVISIONING, else from
# target/provisioning.bin, made once from /dev/urandom. Quit with Ctrl-A X.
elf="$1"
shift
port="${C2D_HTTP_FORWARD:-8380}"
provisioning="${C2D_PROVISIONING:-$(dirname "$0")/target/provisioning.bin}"
if [ ! -f "$provisioning" ]; then
  { printf 'C2DS'; head -c 32 /dev/urandom; } >"$provisioning"
fi
set -- qemu-system-arm -M mps2-an385 -nographic \
  -semihosting-config enable=on,target=native \
  -nic "user,hostfwd=tcp:127.0.0.1:${port}-:80" \
  -device "loader,file=$provisioning,addr=0x1f000" \
  -kernel "$elf" "$@"
echo "QEMU mps2-an385: curl http://127.0.0.1:${port}/click2dial/calls (Ctrl-A X quits)" >&2
if command -v defmt-print >/dev/null 2>&1; then
  "$@" | defmt-print -e "$elf"
else
  echo "defmt-print not found (cargo install defmt-print --locked): raw defmt frames follow" >&2
  exec "$@"
fi
