#!/usr/bin/env bash
# Installs the Debian data packages the project uses, when they are missing and we may.
set -euo pipefail
need=()
[ -d /usr/share/wordnet ] || need+=(wordnet-base)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
# The browser tests (tests/e2e/test_web.py) drive Debian's Chromium through Debian's chromedriver.
command -v chromium >/dev/null || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
[ ${#need[@]} -eq 0 ] && exit 0
install() {  # one retry: a package mirror may hiccup
  $1 apt-get update -qq && $1 env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}
if [ "$(id -u)" -eq 0 ]; then
  install "" || { sleep 10; install ""; }
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  install sudo || { sleep 10; install sudo; }
else
  echo "note: Debian packages ${need[*]} are missing; install them with: sudo apt-get install ${need[*]}" >&2
  echo "      (without them the zero-shot head skips WordNet hypernyms, and Fashion-MNIST and browser tests are skipped)" >&2
fi
