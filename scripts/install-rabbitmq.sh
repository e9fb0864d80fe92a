#!/usr/bin/env bash
# Installs Debian's rabbitmq-server for the `amqp` benchmark (bench/amqp.ts calls this itself), without leaving the
# system service running: the benchmark starts its own RabbitMQ node in a temporary directory on free loopback ports,
# and a packaged node on 5672/4369 would only compete with it for the two cores.
#   scripts/install-rabbitmq.sh        idempotent: does nothing when the package is already installed
set -euo pipefail

package=rabbitmq-server
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = 'install ok installed' ]; }

if installed "$package"; then
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-rabbitmq: needs root (or sudo) to install $package" >&2; exit 1; }
  sudo=(sudo)
fi

# A policy-rc.d that answers 101 ("action forbidden") keeps the package scripts from starting the service at all.
# Whatever policy the machine had (some images ship one) is put back afterwards, even if the install fails.
policy=/usr/sbin/policy-rc.d
saved="$policy.weir-bench-saved"
restore_policy() {
  "${sudo[@]}" rm -f "$policy"
  if [ -e "$saved" ]; then "${sudo[@]}" mv "$saved" "$policy"; fi
}
if [ -e "$policy" ]; then "${sudo[@]}" mv "$policy" "$saved"; fi
trap restore_policy EXIT
printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
"${sudo[@]}" chmod 755 "$policy"

# epmd units are only ours to disable if this install is what brings Erlang onto the machine.
erlang_was_installed=false
if installed erlang-base; then erlang_was_installed=true; fi

echo "install-rabbitmq: installing $package (apt-get update, then apt-get install) …" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "$package" >&2

# policy-rc.d stops the start, but the units are still enabled for the next boot: disable them too (systemctl does that
# even where systemd is not running; --now only where it is).
if command -v systemctl >/dev/null; then
  now=()
  if [ -d /run/systemd/system ]; then now=(--now); fi
  "${sudo[@]}" systemctl disable "${now[@]}" rabbitmq-server.service >&2 || true
  if [ "$erlang_was_installed" = false ]; then
    "${sudo[@]}" systemctl disable "${now[@]}" epmd.socket epmd.service >&2 || true
  fi
elif command -v update-rc.d >/dev/null; then
  "${sudo[@]}" update-rc.d "$package" disable >&2 || true
fi
echo "install-rabbitmq: $(dpkg-query -W -f='${Package} ${Version}' "$package") installed; its system service is not running" >&2
