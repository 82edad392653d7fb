#!/usr/bin/env bash
# Signs a firmware update the way the appliance checks it (embassy-boot, ed25519-salty):
# an Ed25519 signature (RFC 8032, plain) whose message is the 64-byte SHA-512 of the image.
# OpenSSL 3 only: the private key never has to meet a tool of ours.
#
#   bash boards/sign-update.sh new-key update-key.pem   # once per fleet; keep it offline
#   bash boards/sign-update.sh public update-key.pem > update-key.pub   # 32 raw bytes, for the image
#   bash boards/sign-update.sh sign update-key.pem app.bin > app.bin.sig  # 64 raw bytes
set -euo pipefail
usage() { sed -n '7,9p' "$0" | sed 's/^#   //' >&2; exit 2; }
[ $# -ge 2 ] || usage
case $1 in
  new-key)
    [ ! -e "$2" ] || { echo "sign-update.sh: $2 exists; not overwriting a key" >&2; exit 1; }
    (umask 077 && openssl genpkey -algorithm ed25519 -out "$2")
    ;;
  public)
    # The DER SubjectPublicKeyInfo of an Ed25519 key is 44 bytes: a fixed 12-byte prefix,
    # then the key.
    openssl pkey -in "$2" -pubout -outform DER | tail -c 32
    ;;
  sign)
    [ $# -eq 3 ] || usage
    digest=$(mktemp)
    trap 'rm -f "$digest"' EXIT
    openssl dgst -sha512 -binary -out "$digest" "$3"
    openssl pkeyutl -sign -rawin -inkey "$2" -in "$digest"
    ;;
  *) usage ;;
esac
