# Sourced by run.sh and run-leak.sh (POSIX sh): finds Debian's libnetty-java jars, compiles
# NettyFailures.java into a temporary folder removed on exit. Sets `classpath` and `work`;
# expects `here` (this folder) and `out` (the fixture folder to create).
jars=${NETTY_JARS:-/usr/share/java}
classpath="$jars/netty-common.jar:$jars/netty-buffer.jar:$jars/netty-transport.jar:$jars/netty-resolver.jar"
for jar in $(echo "$classpath" | tr ':' ' '); do
  [ -r "$jar" ] || { echo "$(basename "$0"): missing $jar (apt-get install libnetty-java)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/netty-repro.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/classes" "$out"
javac -Xlint:all -Werror -d "$work/classes" -cp "$classpath" "$here/src/NettyFailures.java"
