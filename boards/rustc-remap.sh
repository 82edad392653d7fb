#!/bin/sh
# cargo's rustc wrapper for the boards (`build.rustc-wrapper` in each board's
# .cargo/config.toml): strips the machine's directories from the source paths rustc records,
# as cargo's unstable `trim-paths` would. Panic locations keep `smoltcp-0.13.1/src/wire/tcp.rs`
# instead of `/home/…/.cargo/registry/src/index.crates.io-…/smoltcp-0.13.1/src/wire/tcp.rs`:
# about 2.4 KB less flash for the QEMU image, and the same image wherever it is built.
rustc="$1"
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
set -- "$@" "--remap-path-prefix=$repo/="
for index in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/; do
  [ -d "$index" ] && set -- "$@" "--remap-path-prefix=$index="
done
commit=$("$rustc" -vV | sed -n 's/^commit-hash: //p')
[ -n "$commit" ] && set -- "$@" "--remap-path-prefix=/rustc/$commit/="
exec "$rustc" "$@"
