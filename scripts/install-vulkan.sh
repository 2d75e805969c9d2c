#!/usr/bin/env bash
# Installs a Vulkan driver that Dawn (npm `webgpu`) can use, when none is present: Mesa's lavapipe, the CPU
# driver. Debian 12's own Mesa 22 is too old for Dawn; the one in bookworm-backports (Mesa 25) works, so
# the backports suite is added to the Debian source already configured. Needs root (or sudo).
set -euo pipefail

has_driver() {
  compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null || compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null
}
mesa_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | cut -d. -f1
}

if has_driver && { [ "$(mesa_version)" = "" ] || [ "$(mesa_version)" -ge 24 ]; } && dpkg -s libvulkan1 >/dev/null 2>&1; then
  echo "install-vulkan: a Vulkan driver is already installed"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
. /etc/os-release
if [ "${ID:-}" != "debian" ]; then
  echo "install-vulkan: not Debian ($PRETTY_NAME); install a Vulkan driver (Mesa >= 24 lavapipe, or your GPU's) by hand" >&2
  exit 1
fi
suite="${VERSION_CODENAME}-backports"
src=/etc/apt/sources.list.d/debian.sources
if [ -f "$src" ]; then
  if ! grep -q "$suite" "$src"; then
    # Add the suite to the first stanza (the main archive), next to the suites already listed.
    $SUDO sed -i "0,/^Suites: \(.*\)$/s//Suites: \1 $suite/" "$src"
  fi
elif ! grep -rqs "$suite" /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian $suite main" | $SUDO tee /etc/apt/sources.list.d/backports.list >/dev/null
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq -t "$suite" mesa-vulkan-drivers libvulkan1 >/dev/null
echo "install-vulkan: installed $(dpkg-query -W -f='mesa-vulkan-drivers ${Version}' mesa-vulkan-drivers)"
