#!/usr/bin/env bash
# Starts a Podman service (the Docker Engine API on a unix socket) with its own storage and
# configuration under DIR, for trying kaito-agent --runtime docker and for kaito-bench agent:
# runc, cgroupfs and explicit nofile/nproc ulimits (what a sandbox without CAP_SYS_RESOURCE
# needs), nothing of the machine's own Podman used. Imports localhost/kaito/busybox:1 from
# busybox-static. Prints the --docker-host to give. Stop it with: tools/podman-service.sh DIR stop
set -euo pipefail
dir=${1:?usage: tools/podman-service.sh DIR [stop]}
dir=$(realpath -m "$dir")
podman_cmd() {
  CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/root" --runroot "$dir/runroot" \
    --tmpdir "$dir/tmp" --storage-driver overlay "$@"
}
if [ "${2:-}" = stop ]; then
  podman_cmd rm --all --force --time 0 >/dev/null 2>&1 || true
  if [ -f "$dir/podman.pid" ]; then
    pid=$(cat "$dir/podman.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  grep -o "$dir/[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l || true
  exit 0
fi
mkdir -p "$dir"/root "$dir"/runroot "$dir"/tmp "$dir"/rootfs/bin
cat >"$dir/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$dir/events.log"
CONF
if ! podman_cmd image exists localhost/kaito/busybox:1; then
  cp /bin/busybox "$dir/rootfs/bin/busybox"
  for applet in sh sleep cat echo ls; do ln -sf busybox "$dir/rootfs/bin/$applet"; done
  tar -C "$dir/rootfs" -cf "$dir/busybox.tar" .
  podman_cmd import "$dir/busybox.tar" localhost/kaito/busybox:1 >/dev/null
fi
# Started directly (not through the function), so that $! is podman's own pid.
CONTAINERS_CONF="$dir/containers.conf" podman --root "$dir/root" --runroot "$dir/runroot" \
  --tmpdir "$dir/tmp" --storage-driver overlay system service --time=0 \
  "unix://$dir/podman.sock" >"$dir/service.log" 2>&1 &
echo $! >"$dir/podman.pid"
for _ in $(seq 100); do [ -S "$dir/podman.sock" ] && break; sleep 0.05; done
[ -S "$dir/podman.sock" ] || { echo "podman service did not start; see $dir/service.log" >&2; exit 1; }
echo "unix://$dir/podman.sock"
