#!/usr/bin/env bash
# OpenSSH's sshd (and rsync, the floor of bench_remote.py) for the remote
# tests: tests/test_remote_ssh.py starts its own sshd on 127.0.0.1 with a
# throwaway host key, user key and sshd_config in a temp dir.
# Idempotent and quiet; exits 0 when it cannot install (the tests skip).
set -u
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "os-deps/ssh.sh: cannot install ${need[*]} (not root or no apt): SSH remote tests will skip" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 || {
  apt-get update -qq >/dev/null 2>&1
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1
} || echo "os-deps/ssh.sh: could not install ${need[*]}: SSH remote tests will skip" >&2
exit 0
