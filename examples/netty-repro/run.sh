#!/bin/sh
# Regenerates test/fixtures/netty/* from two real runs of NettyFailures.java (Java 17 + Debian's
# libnetty-java 4.1.48). Needs: javac/java 17, /usr/share/java/netty-*.jar, node >= 20.
# Usage: examples/netty-repro/run.sh [OUTPUT_DIR]   (default: test/fixtures/netty)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-"$repo/test/fixtures/netty"}
. "$here/compile.sh"

# Netty only throws OutOfDirectMemoryError for its own "no cleaner" direct buffers, which on
# Java 9+ need the private DirectByteBuffer(long, int) constructor: hence --add-opens and
# tryReflectionSetAccessible. maxOrder=7 gives 1 MiB chunks, as finagle configures Netty.
run() { # host pid layout seed base-time max-direct-memory
  java -cp "$work/classes:$classpath" \
    --add-opens java.base/java.nio=ALL-UNNAMED \
    -Dio.netty.tryReflectionSetAccessible=true \
    -Dio.netty.leakDetection.level=paranoid \
    -Dio.netty.allocator.maxOrder=7 \
    -Dio.netty.maxDirectMemory="$6" \
    -Dnettyrepro.host="$1" -Dnettyrepro.pid="$2" -Dnettyrepro.layout="$3" \
    -Dnettyrepro.seed="$4" -Dnettyrepro.baseTime="$5" \
    -Dnettyrepro.log="$work/$1.linkerd.log" -Dnettyrepro.manifest="$work/$1.manifest.json" \
    NettyFailures
}
run edge-a 4101 jul 7 2024-11-01T11:59:30.000Z 24000000
run edge-b 4202 log4j 11 2024-11-01T11:59:30.350Z 33554432

{ java -version 2>&1; echo "netty jars: $classpath"; } > "$work/versions.txt"
node "$here/build-fixtures.mjs" "$work" "$out"
echo "fixtures written to $out"
