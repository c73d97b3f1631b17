#!/usr/bin/env bash
# The one C library Rubra builds against: libjpeg-turbo's development files
# (jpeglib.h, libjpeg.so), which rubra-image links to decode JPEG exactly as
# djpeg and Pillow do. Debian images usually have them; installs them if not.
set -euo pipefail
if [ ! -e /usr/include/jpeglib.h ]; then
  echo "== installing libjpeg62-turbo-dev from Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  SUDO=()
  [ "$(id -u)" = 0 ] || SUDO=(sudo)
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq libjpeg62-turbo-dev >/dev/null
fi
