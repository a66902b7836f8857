#!/usr/bin/env bash
# Services and tools the test suite drives for real: redis-server, memcached (Debian),
# iproute2 for the loopback-only network namespace, Node.js + npm for the agent CLIs,
# strace (counts the system calls of a cached CLI lookup), setpriv (util-linux: warm
# opencode servers die with their parent),
# Prometheus (with promtool) and Alertmanager for the monitoring tests (started by the tests
# on loopback; the packages' own services are not needed and are left stopped), Chromium
# (headless) for the bench report test.
set -euo pipefail
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v memcached >/dev/null || need+=(memcached)
command -v ip >/dev/null || need+=(iproute2)
command -v unshare >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v strace >/dev/null || need+=(strace)
command -v npm >/dev/null || need+=(nodejs npm)
command -v prometheus >/dev/null || need+=(prometheus)
command -v promtool >/dev/null || need+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need+=(prometheus-alertmanager)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "system-deps: missing ${need[*]}; run as root or install them: apt-get install ${need[*]}" >&2
        exit 1
    fi
    echo "system-deps: installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # policy-rc.d 101: the packages' postinst must not start their system services; the
    # tests start their own servers on free loopback ports.
    policy=/usr/sbin/policy-rc.d
    made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made_policy=1
    fi
    apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
    if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi
fi
