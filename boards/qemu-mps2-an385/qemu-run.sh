#!/bin/sh
# cargo's runner for this board: boots the image ($1) on QEMU's mps2-an385 with user
# networking, the firmware's port 80 forwarded to 127.0.0.1:${C2D_HTTP_FORWARD:-8380}, and
# the defmt log (semihosting, on QEMU's stdout) decoded by defmt-print when it is installed.
# The device is provisioned as an installer would at flashing time: the provisioning page
# (`C2DS` and a 32-byte device secret, src/storage.rs) comes from $C2D_PROVISIONING, else from
# target/provisioning.bin, made once from /dev/urandom. Quit with Ctrl-A X.
# The `admin` image is linked at ACTIVE (0x4_0000, memory-admin.x): it is started by the
# bootloader (../qemu-mps2-an385-bootloader, built here if missing), which copies it from
# FACTORY (0x20_0000, where it is loaded as a raw binary) into an empty ACTIVE
# (src/storage.rs has the flash map). $C2D_UPDATE_KEY may name the fleet's public key
# (32 bytes, sign-update.sh public) to provision with the device secret.
elf="$1"
shift
port="${C2D_HTTP_FORWARD:-8380}"
provisioning="${C2D_PROVISIONING:-$(dirname "$0")/target/provisioning.bin}"
if [ ! -f "$provisioning" ]; then
  { printf 'C2DS'; head -c 32 /dev/urandom; } >"$provisioning"
fi
kernel="$elf"
factory=""
if arm-none-eabi-readelf -l "$elf" 2>/dev/null | grep -q 'LOAD.* 0x00040000 '; then
  board=$(cd "$(dirname "$0")" && pwd)
  loader="$board/../qemu-mps2-an385-bootloader"
  kernel="$loader/target/thumbv7m-none-eabi/release/click2dial-qemu-mps2-an385-bootloader"
  [ -f "$kernel" ] || (cd "$loader" && cargo build --release) || exit 1
  arm-none-eabi-objcopy -O binary "$elf" "$elf.bin" || exit 1
  factory="loader,file=$elf.bin,addr=0x200000,force-raw=on"
  if [ -n "${C2D_UPDATE_KEY:-}" ]; then
    page="$elf.provisioning.bin"
    # The device secret and the admin key's hash (if any) up to byte 72, then C2DU and the key.
    have=$(head -c 72 "$provisioning" | wc -c)
    { head -c 72 "$provisioning"; head -c $((72 - have)) /dev/zero; printf 'C2DU'
      cat "$C2D_UPDATE_KEY"; } >"$page"
    provisioning="$page"
  fi
fi
set -- qemu-system-arm -M mps2-an385 -nographic \
  -semihosting-config enable=on,target=native \
  -nic "user,hostfwd=tcp:127.0.0.1:${port}-:80" \
  -device "loader,file=$provisioning,addr=0x1f000" \
  ${factory:+-device "$factory"} \
  -kernel "$kernel" "$@"
echo "QEMU mps2-an385: curl http://127.0.0.1:${port}/click2dial/calls (Ctrl-A X quits)" >&2
if command -v defmt-print >/dev/null 2>&1; then
  "$@" | defmt-print -e "$elf"
else
  echo "defmt-print not found (cargo install defmt-print --locked): raw defmt frames follow" >&2
  exec "$@"
fi
