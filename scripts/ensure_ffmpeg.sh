#!/usr/bin/env bash
# Make sure the system FFmpeg libraries that torchcodec (and so datasets' Audio feature) need are present.
# As root on Debian/Ubuntu we install the `ffmpeg` package; otherwise we say what to run.
set -euo pipefail
have_ffmpeg() { ldconfig -p 2>/dev/null | grep -q 'libavcodec\.so' || command -v ffmpeg >/dev/null 2>&1; }
if have_ffmpeg; then exit 0; fi
if [ "$(uname)" = "Darwin" ]; then
  echo "FFmpeg is missing: install it with 'brew install ffmpeg', then run make again." >&2; exit 1
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing the system FFmpeg libraries (Debian package 'ffmpeg') ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null
  have_ffmpeg && exit 0
fi
cat >&2 <<MSG
FFmpeg is missing. torchcodec, which the 'datasets' library uses to decode audio, needs it.
Install it, then run make again:
  Debian/Ubuntu: sudo apt-get install ffmpeg
  Fedora:        sudo dnf install ffmpeg
  conda:         conda install -c conda-forge ffmpeg
MSG
exit 1
