#!/bin/sh
# Regenerates test/fixtures/netty-leak/* from two real runs of NettyFailures.java in its leak
# scenario (Java 17 + Debian's libnetty-java 4.1.48) on one host, one after the other: pid 4301
# forgets 40 connection buffers of 64 KiB a second and soon dies of OutOfDirectMemoryError (the
# crash that tells the limit); pid 4302, its successor with the same flags, forgets 24 a second
# (90 MiB per hour of event time) and is scraped every 30 s until it dies the same way. About
# five minutes.
# Needs: javac/java 17, /usr/share/java/netty-*.jar, node >= 20.
# Usage: examples/netty-repro/run-leak.sh [OUTPUT_DIR]   (default: test/fixtures/netty-leak)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-"$repo/test/fixtures/netty-leak"}
. "$here/compile.sh"

# As run.sh, plus: event time runs 60 times faster than the run (a second is a minute), a small
# heap so that forgotten buffers are collected and reported, and a 256 MiB Netty limit: with much
# less, the pool's own slack (free space inside its 1 MiB chunks, a few MiB) would be a large share
# of the limit, as it never is in production (linkerd's limit is the heap size, often 1 GiB).
run() { # pid leaks-per-second seed base-time
  java -Xmx64m -cp "$work/classes:$classpath" \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    -Dio.netty.tryReflectionSetAccessible=true \
    -Dio.netty.leakDetection.level=paranoid \
    -Dio.netty.allocator.maxOrder=7 \
    -Dio.netty.maxDirectMemory=268435456 \
    -Dnettyrepro.scenario=leak -Dnettyrepro.speed=60 -Dnettyrepro.leaksPerSecond="$2" \
    -Dnettyrepro.host=edge-c -Dnettyrepro.pid="$1" -Dnettyrepro.layout=jul \
    -Dnettyrepro.seed="$3" -Dnettyrepro.baseTime="$4" \
    -Dnettyrepro.log="$work/edge-c.$1.linkerd.log" -Dnettyrepro.manifest="$work/edge-c.$1.manifest.json" \
    -Dnettyrepro.metrics="$work/edge-c.$1.metrics.ndjson" \
    NettyFailures
}
run 4301 40 5 2024-11-02T06:00:00Z
run 4302 24 7 2024-11-02T08:00:00Z

{ java -version 2>&1; echo "netty jars: $classpath"; } > "$work/versions.txt"
node "$here/build-leak-fixture.mjs" "$work" "$out"
echo "fixture written to $out"
