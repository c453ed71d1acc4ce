import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.ResourceLeakDetector;
import io.netty.util.Version;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.internal.OutOfDirectMemoryError;
import io.netty.util.internal.PlatformDependent;
import io.netty.util.internal.logging.InternalLoggerFactory;
import io.netty.util.internal.logging.JdkLoggerFactory;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.time.Instant;
import java.time.ZoneId;
import java.time.temporal.ChronoUnit;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.logging.Handler;
import java.util.logging.Level;
import java.util.logging.LogManager;
import java.util.logging.LogRecord;
import java.util.logging.Logger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Triggers three genuine Netty failures through Netty's own code paths and logs them the way a
 * linkerd 1.x process would have printed them:
 *
 * <ol>
 *   <li>a ResourceLeakDetector "LEAK:" report (a handler that forgets to release a read buffer),
 *   <li>"An exceptionCaught() event was fired, and it reached at the tail of the pipeline" whose
 *       cause is the JDK's own connection-reset exception (the peer closes with SO_LINGER 0),
 *   <li>Netty's OutOfDirectMemoryError thrown by the pooled allocator inside
 *       ChannelInitializer.initChannel, which Netty logs as "Failed to initialize a channel".
 * </ol>
 *
 * Only the line layout (the JUL Handler below) is ours; every message and stack trace is produced
 * by Netty 4.1 and the JDK. Each logged record is also described in a manifest (JSON) so the
 * fixtures can be checked against what was really written.
 *
 * System properties: nettyrepro.log (raw log file), nettyrepro.manifest (manifest file),
 * nettyrepro.layout (jul|log4j), nettyrepro.baseTime (ISO instant the clock starts at),
 * nettyrepro.seed (varies payload and allocation sizes), nettyrepro.host, nettyrepro.pid.
 */
public final class NettyFailures {
    private static final String CATEGORY_LEAK = "buffer-leak";
    private static final String CATEGORY_TAIL = "exception-caught-at-tail";
    private static final String CATEGORY_DIRECT = "direct-memory-exhausted";

    private static final Pattern OODM_MESSAGE = Pattern.compile(
            "failed to allocate (\\d+) byte\\(s\\) of direct memory \\(used: (\\d+), max: (\\d+)\\)");

    /** Numbers of the OutOfDirectMemoryError we caught, reported in the manifest. */
    private record DirectMemoryNumbers(long requested, long used, long max) {}

    private static final AtomicReference<DirectMemoryNumbers> caughtDirectMemoryNumbers = new AtomicReference<>();
    /** Direct buffers held on purpose until the allocator gives up; released before exit. */
    private static final List<ByteBuf> hoardedBuffers = new CopyOnWriteArrayList<>();

    public static void main(String[] args) throws Exception {
        Instant programStart = Instant.now();
        Path logPath = Path.of(requiredProperty("nettyrepro.log"));
        Path manifestPath = Path.of(requiredProperty("nettyrepro.manifest"));
        String layout = System.getProperty("nettyrepro.layout", "jul");
        Instant baseTime = Instant.parse(System.getProperty("nettyrepro.baseTime", programStart.toString()));
        long seed = Long.parseLong(System.getProperty("nettyrepro.seed", "1"));
        String host = System.getProperty("nettyrepro.host", "localhost");
        String pid = System.getProperty("nettyrepro.pid", String.valueOf(ProcessHandle.current().pid()));

        String scenario = System.getProperty("nettyrepro.scenario", "failures");
        double speed = Double.parseDouble(System.getProperty("nettyrepro.speed", "1"));
        LinkerdLayoutHandler handler = new LinkerdLayoutHandler(
                logPath, layout, baseTime, programStart, ZoneId.of("UTC"), speed);
        LogManager.getLogManager().reset();
        Logger root = Logger.getLogger("");
        root.setLevel(Level.INFO);
        root.addHandler(handler);
        // linkerd routes Netty through slf4j; with only Netty on the classpath, JUL is what Netty
        // would pick anyway. Setting it explicitly keeps the choice independent of the classpath.
        InternalLoggerFactory.setDefaultFactory(JdkLoggerFactory.INSTANCE);

        Logger linkerdLog = Logger.getLogger("io.buoyant.linkerd.Main");
        String nettyVersion = Version.identify().get("netty-common").artifactVersion();
        linkerdLog.info(String.format(Locale.ROOT,
                "netty-repro %s/%s: Netty %s on Java %s (linkerd 1.x log layout: %s)",
                host, pid, nettyVersion, System.getProperty("java.version"), layout));
        linkerdLog.info(String.format(Locale.ROOT,
                "leak detection %s, netty direct memory limit %d bytes, no-cleaner buffers %b",
                ResourceLeakDetector.getLevel(), PlatformDependent.maxDirectMemory(),
                PlatformDependent.useDirectBufferNoCleaner()));
        // A seed-dependent number of plain INFO lines shifts this process's failures against the
        // other host's, so that in the interleaved export their records do not line up.
        for (int router = 1; router <= Math.floorMod(seed, 5); router++) {
            linkerdLog.info(String.format(Locale.ROOT,
                    "initialized router out-%d (seed %d): label=out-%d, dtab=/svc=>/#/io.l5d.fs", router, seed, router));
        }
        if (!PlatformDependent.useDirectBufferNoCleaner()) {
            throw new IllegalStateException("Netty cannot use no-cleaner direct buffers, so it would never throw "
                    + "OutOfDirectMemoryError; run with --add-opens java.base/java.nio=ALL-UNNAMED "
                    + "-Dio.netty.tryReflectionSetAccessible=true");
        }

        if (scenario.equals("leak")) {
            runLeak(handler, linkerdLog, seed, speed, baseTime, Path.of(requiredProperty("nettyrepro.metrics")));
            linkerdLog.info("netty-repro " + host + "/" + pid + " done");
            handler.close();
            List<String> problems = handler.checkLeakRun(CATEGORY_DIRECT);
            Files.writeString(manifestPath, handler.manifestJson(host, pid, layout, nettyVersion, baseTime, seed),
                    StandardCharsets.UTF_8);
            if (!problems.isEmpty()) {
                System.err.println("netty-repro: unexpected log records: " + problems);
                System.exit(2);
            }
            return;
        }
        if (!scenario.equals("failures")) {
            throw new IllegalArgumentException("nettyrepro.scenario must be failures or leak, not " + scenario);
        }

        EventLoopGroup bossGroup = new NioEventLoopGroup(1, new DefaultThreadFactory("finagle/netty4-boss"));
        EventLoopGroup workerGroup = new NioEventLoopGroup(2, new LinkerdThreadFactory());
        try {
            Channel leakServer = bind(bossGroup, workerGroup, new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel ch) {
                    ch.pipeline().addLast("http-decoder", new ForgetfulHandler());
                }
            });
            Channel resetServer = bind(bossGroup, workerGroup, new ChannelInitializer<SocketChannel>() {
                @Override
                protected void initChannel(SocketChannel ch) {
                    // No handler overrides exceptionCaught(), so the IOException reaches the tail.
                    ch.pipeline().addLast("discard", new DiscardHandler());
                }
            });
            Channel exhaustServer = bind(bossGroup, workerGroup, new DirectMemoryHoardingInitializer(seed));
            linkerdLog.info("serving leak on " + leakServer.localAddress() + ", reset on "
                    + resetServer.localAddress() + ", exhaust on " + exhaustServer.localAddress());

            triggerLeakReport(handler, (InetSocketAddress) leakServer.localAddress(), seed);
            linkerdLog.info("leak report seen; next: peer reset");

            sendThenReset((InetSocketAddress) resetServer.localAddress(), payload(seed, 700));
            awaitCondition("tail-of-pipeline warning", () -> handler.count(CATEGORY_TAIL) > 0);
            linkerdLog.info("tail warning seen; next: direct memory exhaustion");

            sendAndClose((InetSocketAddress) exhaustServer.localAddress(), payload(seed, 64));
            awaitCondition("channel initializer warning", () -> handler.count(CATEGORY_DIRECT) > 0);
            for (ByteBuf buffer : hoardedBuffers) {
                buffer.release();
            }
            hoardedBuffers.clear();
            linkerdLog.info(String.format(Locale.ROOT,
                    "released hoarded buffers; netty direct memory used %d of %d bytes",
                    PlatformDependent.usedDirectMemory(), PlatformDependent.maxDirectMemory()));
        } finally {
            workerGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            bossGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
        linkerdLog.info("netty-repro " + host + "/" + pid + " done");
        handler.close();
        List<String> problems = handler.checkExactlyOneOfEach(List.of(CATEGORY_LEAK, CATEGORY_TAIL, CATEGORY_DIRECT));
        Files.writeString(manifestPath, handler.manifestJson(host, pid, layout, nettyVersion, baseTime, seed),
                StandardCharsets.UTF_8);
        if (!problems.isEmpty()) {
            System.err.println("netty-repro: unexpected log records: " + problems);
            System.exit(2);
        }
    }

    /** Connections the leak scenario's server has taken a buffer for. */
    private static final java.util.concurrent.atomic.AtomicLong CONNECTIONS = new java.util.concurrent.atomic.AtomicLong();

    /** Event time between two metrics snapshots: a scrape every 30 s. */
    private static final long SCRAPE_EVENT_MS = 30_000;

    /**
     * The leak scenario: a server whose every connection takes a buffer from Netty's pooled allocator
     * (ch.alloc(), as finagle's channels do) and gives it back when the connection closes, except
     * nettyrepro.leaksPerSecond buffers a second, which are forgotten (never released: once garbage
     * collected, their pool memory is lost and paranoid leak detection reports them). Clients open
     * connections at a steady rate with bursts and hold them a random while; a few close with a
     * reset. Every 30 s of event time the allocator's usage is written as linkerd's /admin/metrics.json
     * shows it, until Netty refuses an allocation with OutOfDirectMemoryError.
     */
    private static void runLeak(LinkerdLayoutHandler handler, Logger linkerdLog, long seed, double speed, Instant baseTime,
                                Path metricsPath) throws Exception {
        int bufferBytes = Integer.parseInt(System.getProperty("nettyrepro.bufferBytes", "65536"));
        double leaksPerSecond = Double.parseDouble(System.getProperty("nettyrepro.leaksPerSecond", "6"));
        int connectionsPerSecond = Integer.parseInt(System.getProperty("nettyrepro.connectionsPerSecond", "40"));
        java.util.Random random = new java.util.Random(seed);
        java.util.concurrent.atomic.AtomicBoolean exhausted = new java.util.concurrent.atomic.AtomicBoolean();
        EventLoopGroup bossGroup = new NioEventLoopGroup(1, new DefaultThreadFactory("finagle/netty4-boss"));
        // One event loop: Netty's counter then moves on one thread, so the error's numbers can be cross-checked.
        EventLoopGroup workerGroup = new NioEventLoopGroup(1, new LinkerdThreadFactory());
        java.util.concurrent.ScheduledExecutorService scraper = java.util.concurrent.Executors.newSingleThreadScheduledExecutor();
        java.util.concurrent.ScheduledExecutorService closer = java.util.concurrent.Executors.newScheduledThreadPool(2);
        try (java.io.BufferedWriter metrics = Files.newBufferedWriter(metricsPath, StandardCharsets.UTF_8)) {
            Channel server = bind(bossGroup, workerGroup, new LeakingInitializer(exhausted, bufferBytes, leaksPerSecond));
            InetSocketAddress address = (InetSocketAddress) server.localAddress();
            linkerdLog.info(String.format(Locale.ROOT,
                    "forgetting %.1f connection buffers a second (%d bytes each, %d connections/s and bursts); netty direct memory limit %d bytes",
                    leaksPerSecond, bufferBytes, connectionsPerSecond, PlatformDependent.maxDirectMemory()));
            long scrapeRealMicros = Math.max(1000, Math.round(SCRAPE_EVENT_MS * 1000 / speed));
            scraper.scheduleAtFixedRate(() -> writeSnapshot(metrics, handler, baseTime),
                    0, scrapeRealMicros, TimeUnit.MICROSECONDS);
            long started = System.nanoTime();
            long deadline = started + TimeUnit.MINUTES.toNanos(15);
            long last = started;
            long opened = 0;
            double extra = 0;
            int burstTicksLeft = 0;
            while (!exhausted.get()) {
                long now = System.nanoTime();
                if (now > deadline) {
                    throw new IllegalStateException("direct memory was never exhausted");
                }
                // Traffic comes in bursts: now and then four times the rate for a second or two.
                if (burstTicksLeft == 0 && random.nextInt(400) == 0) {
                    burstTicksLeft = 40 + random.nextInt(40);
                }
                if (burstTicksLeft > 0) {
                    burstTicksLeft--;
                    extra += 3 * connectionsPerSecond * (now - last) / 1e9;
                }
                last = now;
                // Paced by the clock, not by the loop: the rate (and so the leak) stays steady
                // however long opening the connections takes.
                double due = connectionsPerSecond * (now - started) / 1e9 + extra;
                for (; opened < due && !exhausted.get(); opened++) {
                    openConnection(address, random, closer);
                }
                Thread.sleep(25);
            }
            awaitCondition("channel initializer warning", () -> handler.count(CATEGORY_DIRECT) > 0);
            scraper.shutdown();
            scraper.awaitTermination(5, TimeUnit.SECONDS);
        } finally {
            scraper.shutdownNow();
            closer.shutdownNow();
            workerGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            bossGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }

    /** A client connection: a request, held open a while, closed (one in 150 with a reset). */
    private static void openConnection(InetSocketAddress address, java.util.Random random,
                                       java.util.concurrent.ScheduledExecutorService closer) throws IOException {
        Socket socket = new Socket();
        socket.connect(address, 5000);
        socket.getOutputStream().write(("GET /api/v1/status HTTP/1.1\r\nHost: edge\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().flush();
        boolean reset = random.nextInt(150) == 0;
        closer.schedule(() -> {
            try {
                if (reset) {
                    socket.setSoLinger(true, 0);
                }
                socket.close();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }, 50 + random.nextInt(750), TimeUnit.MILLISECONDS);
    }

    /**
     * One snapshot as linkerd's /admin/metrics.json has it: finagle's netty4/pooling/used (the
     * allocator's used direct memory plus what its thread caches hold, exportNetty4Metrics), the
     * JDK's direct buffer pool and the JVM's start time and uptime (twitter/util JvmStats), all
     * Float gauges. Netty's own counter, which the limit applies to, is written beside it for checking.
     */
    private static void writeSnapshot(java.io.BufferedWriter out, LinkerdLayoutHandler handler, Instant baseTime) {
        Instant now = handler.eventTime(Instant.now());
        io.netty.buffer.PooledByteBufAllocatorMetric metric = io.netty.buffer.PooledByteBufAllocator.DEFAULT.metric();
        long threadLocalCacheSize = metric.tinyCacheSize() + metric.smallCacheSize() + metric.normalCacheSize();
        long threadLocalCaches = 0;
        for (io.netty.buffer.PoolArenaMetric arena : metric.directArenas()) {
            threadLocalCaches += arena.numThreadCaches();
        }
        java.lang.management.BufferPoolMXBean direct = java.lang.management.ManagementFactory
                .getPlatformMXBeans(java.lang.management.BufferPoolMXBean.class).stream()
                .filter(pool -> pool.getName().equals("direct")).findFirst().orElseThrow();
        float pooled = metric.usedDirectMemory() + threadLocalCaches * threadLocalCacheSize;
        String json = String.format(Locale.ROOT,
                "{\"time\":\"%s\",\"connections\":%d,\"netty_counter\":%d,\"metrics\":{\"finagle/netty4/pooling/used\":%s,"
                        + "\"jvm/mem/buffer/direct/count\":%s,\"jvm/mem/buffer/direct/max\":%s,\"jvm/mem/buffer/direct/used\":%s,"
                        + "\"jvm/start_time\":%s,\"jvm/uptime\":%s}}%n",
                now.truncatedTo(ChronoUnit.MILLIS), CONNECTIONS.get(), PlatformDependent.usedDirectMemory(), Float.toString(pooled),
                Float.toString(direct.getCount()), Float.toString(direct.getTotalCapacity()), Float.toString(direct.getMemoryUsed()),
                Float.toString(baseTime.toEpochMilli()), Float.toString(Duration.between(baseTime, now).toMillis()));
        try {
            synchronized (out) {
                out.write(json);
                out.flush();
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot write the metrics file", e);
        }
    }

    /**
     * Takes a pooled direct buffer per connection and gives it back at close, except that it forgets
     * one at a steady pace of the clock (whatever the traffic): a leak of so many bytes a second,
     * under traffic whose bursts come and go.
     */
    private static final class LeakingInitializer extends ChannelInitializer<SocketChannel> {
        private final java.util.concurrent.atomic.AtomicBoolean exhausted;
        private final int bufferBytes;
        private final long leakIntervalNanos;
        private long nextLeakAt = System.nanoTime();

        LeakingInitializer(java.util.concurrent.atomic.AtomicBoolean exhausted, int bufferBytes, double leaksPerSecond) {
            this.exhausted = exhausted;
            this.bufferBytes = bufferBytes;
            this.leakIntervalNanos = Math.round(1e9 / leaksPerSecond);
        }

        @Override
        protected void initChannel(SocketChannel ch) {
            if (exhausted.get()) {
                ch.close();
                return;
            }
            ByteBuf buffer;
            try {
                buffer = ch.alloc().directBuffer(bufferBytes, bufferBytes);
            } catch (OutOfDirectMemoryError error) {
                caughtDirectMemoryNumbers.set(numbersOf(error));
                exhausted.set(true);
                throw error; // ChannelInitializer logs it as "Failed to initialize a channel".
            }
            CONNECTIONS.incrementAndGet();
            buffer.touch("connection buffer taken by the session handler");
            boolean forget = System.nanoTime() >= nextLeakAt;
            if (forget) {
                nextLeakAt += leakIntervalNanos;
            }
            ch.pipeline().addLast("session", new SessionHandler(buffer, forget));
        }
    }

    /** Holds the connection's buffer; releases it when the connection ends, or forgets it. */
    private static final class SessionHandler extends SimpleChannelInboundHandler<ByteBuf> {
        private ByteBuf buffer;
        private final boolean forget;

        SessionHandler(ByteBuf buffer, boolean forget) {
            this.buffer = buffer;
            this.forget = forget;
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ByteBuf msg) {
            buffer.writerIndex(0);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (!forget) {
                buffer.release();
            }
            buffer = null;
            ctx.fireChannelInactive();
        }
    }

    private static String requiredProperty(String name) {
        String value = System.getProperty(name);
        if (value == null || value.isEmpty()) {
            throw new IllegalArgumentException("missing system property -D" + name);
        }
        return value;
    }

    private static Channel bind(EventLoopGroup boss, EventLoopGroup workers, ChannelInitializer<SocketChannel> init)
            throws InterruptedException {
        return new ServerBootstrap()
                .group(boss, workers)
                .channel(NioServerSocketChannel.class)
                .childHandler(init)
                .bind(new InetSocketAddress("127.0.0.1", 0))
                .sync()
                .channel();
    }

    private static byte[] payload(long seed, int baseLength) {
        int length = baseLength + Math.floorMod(seed * 37, 200);
        byte[] request = new byte[length];
        byte[] line = ("GET /api/v" + seed + "/status HTTP/1.1\r\nHost: edge\r\n").getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < length; i++) {
            request[i] = line[i % line.length];
        }
        return request;
    }

    /**
     * Netty reports a leak only after the leaked buffer was garbage-collected and a later
     * allocation runs the detector, so keep reading new requests between collections.
     */
    private static void triggerLeakReport(LinkerdLayoutHandler handler, InetSocketAddress leakServer, long seed)
            throws Exception {
        sendAndClose(leakServer, payload(seed, 300));
        for (int attempt = 0; attempt < 40 && handler.count(CATEGORY_LEAK) == 0; attempt++) {
            System.gc();
            Thread.sleep(100);
            sendAndClose(leakServer, payload(seed, 40));
            Thread.sleep(100);
        }
        awaitCondition("LEAK report", () -> handler.count(CATEGORY_LEAK) > 0);
    }

    private static void sendAndClose(InetSocketAddress address, byte[] bytes) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(address, 5000);
            OutputStream out = socket.getOutputStream();
            out.write(bytes);
            out.flush();
        }
    }

    /** SO_LINGER 0 makes close() send an RST instead of a FIN: the server's read fails with a reset. */
    private static void sendThenReset(InetSocketAddress address, byte[] bytes) throws Exception {
        Socket socket = new Socket();
        socket.connect(address, 5000);
        socket.getOutputStream().write(bytes);
        socket.getOutputStream().flush();
        Thread.sleep(200);
        socket.setSoLinger(true, 0);
        socket.close();
    }

    private static void awaitCondition(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("timed out waiting for " + what);
            }
            Thread.sleep(20);
        }
    }

    /** Keeps the first buffer of each connection without releasing it: the classic leak. */
    private static final class ForgetfulHandler extends ChannelInboundHandlerAdapter {
        private boolean keptOne;

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (!keptOne && msg instanceof ByteBuf buffer && buffer.readableBytes() > 256) {
                keptOne = true;
                buffer.touch("request head parsed by " + ctx.name());
                return;
            }
            ReferenceCountUtil.release(msg);
        }
    }

    private static final class DiscardHandler extends SimpleChannelInboundHandler<ByteBuf> {
        @Override
        protected void channelRead0(ChannelHandlerContext ctx, ByteBuf msg) {
            // Reads are consumed and released by SimpleChannelInboundHandler.
        }
    }

    /**
     * Allocates direct buffers from the channel's pooled allocator and never lets go, the way a
     * leaking proxy ends up, until Netty's direct-memory counter refuses the next allocation.
     */
    private static final class DirectMemoryHoardingInitializer extends ChannelInitializer<SocketChannel> {
        private final long seed;

        DirectMemoryHoardingInitializer(long seed) {
            this.seed = seed;
        }

        @Override
        protected void initChannel(SocketChannel ch) {
            int normalSize = 64 * 1024 * (1 + Math.floorMod(seed, 4));
            int hugeSize = 1_100_000 + Math.floorMod(seed * 7919, 300_000);
            try {
                for (int i = 0; i < 100_000; i++) {
                    int size = i % 3 == 2 ? hugeSize + i : normalSize;
                    hoardedBuffers.add(ch.alloc().directBuffer(size, size));
                }
            } catch (OutOfDirectMemoryError error) {
                caughtDirectMemoryNumbers.set(numbersOf(error));
                throw error; // ChannelInitializer logs it as "Failed to initialize a channel".
            }
            throw new IllegalStateException("direct memory was never exhausted");
        }
    }

    /** OutOfDirectMemoryError carries its numbers only in its message; cross-checked with Netty's counters. */
    private static DirectMemoryNumbers numbersOf(OutOfDirectMemoryError error) {
        Matcher matcher = OODM_MESSAGE.matcher(String.valueOf(error.getMessage()));
        if (!matcher.find()) {
            throw new IllegalStateException("unexpected OutOfDirectMemoryError message: " + error.getMessage());
        }
        DirectMemoryNumbers numbers = new DirectMemoryNumbers(
                Long.parseLong(matcher.group(1)), Long.parseLong(matcher.group(2)), Long.parseLong(matcher.group(3)));
        if (numbers.max() != PlatformDependent.maxDirectMemory()
                || numbers.used() != PlatformDependent.usedDirectMemory()) {
            throw new IllegalStateException("OutOfDirectMemoryError numbers " + numbers + " disagree with Netty's counters "
                    + PlatformDependent.usedDirectMemory() + "/" + PlatformDependent.maxDirectMemory());
        }
        return numbers;
    }

    /** finagle &lt; 18.9 named its event-loop threads finagle/netty4-&lt;n&gt; (NamedPoolThreadFactory). */
    private static final class LinkerdThreadFactory extends DefaultThreadFactory {
        private final AtomicInteger nextThreadNumber = new AtomicInteger(1);

        LinkerdThreadFactory() {
            super("finagle/netty4", true);
        }

        @Override
        protected Thread newThread(Runnable runnable, String ignoredName) {
            return super.newThread(runnable, "finagle/netty4-" + nextThreadNumber.getAndIncrement());
        }
    }

    /**
     * Writes each record in one of linkerd 1.x's two layouts and remembers what it wrote.
     * jul: io.buoyant.admin.TimeZoneLogFormat — "W 1101 14:10:26.714 UTC THREAD42: msg", then
     * "\n" + printStackTrace() when there is a throwable, then "\n" (a blank line after a trace).
     * log4j: linkerd's log4j.properties "%p %d{MMdd HH:mm:ss.SSS z} %t: %m%n", then the
     * throwable's lines as log4j 1.x's appender prints them (no blank line).
     */
    private static final class LinkerdLayoutHandler extends Handler {
        private final OutputStream out;
        private final String layout;
        private final Instant baseTime;
        private final Instant programStart;
        /** Event time runs this many times faster than the run (1 for the failure fixtures). */
        private final double speed;
        private final DateTimeFormatter headerTime;
        private final DateTimeFormatter isoTime = DateTimeFormatter.ISO_INSTANT;
        private final List<String> manifestRecords = new ArrayList<>();
        private final List<String> categories = new ArrayList<>();
        private final List<String> unexpected = new ArrayList<>();
        private final List<String> nettyLoggers = new ArrayList<>();

        LinkerdLayoutHandler(Path logFile, String layout, Instant baseTime, Instant programStart, ZoneId zone, double speed)
                throws IOException {
            if (!layout.equals("jul") && !layout.equals("log4j")) {
                throw new IllegalArgumentException("nettyrepro.layout must be jul or log4j, not " + layout);
            }
            this.out = Files.newOutputStream(logFile, StandardOpenOption.CREATE, StandardOpenOption.TRUNCATE_EXISTING,
                    StandardOpenOption.WRITE);
            this.layout = layout;
            this.baseTime = baseTime;
            this.programStart = programStart;
            this.speed = speed;
            this.headerTime = DateTimeFormatter.ofPattern("MMdd HH:mm:ss.SSS z", Locale.ROOT).withZone(zone);
        }

        @Override
        public synchronized void publish(LogRecord record) {
            if (!isLoggable(record)) {
                return;
            }
            // The clock starts at baseTime and advances with the elapsed time of the run, times speed.
            Instant at = eventTime(record.getInstant());
            String message = record.getMessage() == null ? "" : record.getMessage();
            String formatted = layout.equals("jul") ? formatJul(record, at, message) : formatLog4j(record, at, message);
            int nonBlankLines = 0;
            for (String line : formatted.split("\n", -1)) {
                if (!line.isBlank()) {
                    nonBlankLines++;
                }
            }
            try {
                out.write(formatted.getBytes(StandardCharsets.UTF_8));
                out.flush();
            } catch (IOException e) {
                throw new IllegalStateException("cannot write the log file", e);
            }
            String category = categoryOf(record, message);
            categories.add(category);
            if (category == null && !record.getLoggerName().equals("io.buoyant.linkerd.Main")) {
                unexpected.add(record.getLoggerName() + ": " + firstLine(message));
            }
            StringBuilder json = new StringBuilder();
            json.append("{\"seq\":").append(manifestRecords.size() + 1)
                    .append(",\"time\":").append(quote(isoTime.format(at.truncatedTo(ChronoUnit.MILLIS))))
                    .append(",\"time_us\":").append(ChronoUnit.MICROS.between(Instant.EPOCH, at))
                    .append(",\"level\":").append(quote(record.getLevel().getName()))
                    .append(",\"logger\":").append(quote(record.getLoggerName()))
                    .append(",\"thread\":").append(quote(Thread.currentThread().getName()))
                    .append(",\"first_line\":").append(quote(firstLine(formatted)))
                    .append(",\"message_first_line\":").append(quote(firstLine(message)))
                    .append(",\"exception_class\":").append(record.getThrown() == null ? "null"
                            : quote(record.getThrown().getClass().getName()))
                    .append(",\"exception_message\":").append(record.getThrown() == null
                            || record.getThrown().getMessage() == null ? "null" : quote(record.getThrown().getMessage()))
                    .append(",\"cause_class\":").append(record.getThrown() == null || record.getThrown().getCause() == null
                            ? "null" : quote(record.getThrown().getCause().getClass().getName()))
                    .append(",\"category\":").append(category == null ? "null" : quote(category))
                    .append(",\"line_count\":").append(nonBlankLines)
                    .append(",\"raw_line_count\":").append(formatted.split("\n", -1).length - 1);
            if (CATEGORY_DIRECT.equals(category)) {
                DirectMemoryNumbers numbers = caughtDirectMemoryNumbers.get();
                if (numbers == null) {
                    unexpected.add("OutOfDirectMemoryError logged before the initializer caught it");
                } else {
                    json.append(",\"requested_bytes\":").append(numbers.requested())
                            .append(",\"used_bytes\":").append(numbers.used())
                            .append(",\"max_bytes\":").append(numbers.max());
                }
            }
            json.append('}');
            manifestRecords.add(json.toString());
        }

        Instant eventTime(Instant real) {
            long elapsedNanos = Duration.between(programStart, real).toNanos();
            return baseTime.plusNanos(Math.round(elapsedNanos * speed));
        }

        private String formatJul(LogRecord record, Instant at, String message) {
            StringBuilder line = new StringBuilder()
                    .append(julLevelLetter(record.getLevel()))
                    .append(' ').append(headerTime.format(at))
                    .append(" THREAD").append(record.getLongThreadID())
                    .append(": ").append(message);
            if (record.getThrown() != null) {
                line.append('\n').append(stackTraceOf(record.getThrown()));
            }
            return line.append('\n').toString();
        }

        private String formatLog4j(LogRecord record, Instant at, String message) {
            StringBuilder line = new StringBuilder()
                    .append(log4jLevel(record.getLevel()))
                    .append(' ').append(headerTime.format(at))
                    .append(' ').append(Thread.currentThread().getName())
                    .append(": ").append(message).append('\n');
            if (record.getThrown() != null) {
                // log4j 1.x ThrowableInformation: printStackTrace split into lines, each printed + newline.
                for (String traceLine : stackTraceOf(record.getThrown()).split("\\R")) {
                    line.append(traceLine).append('\n');
                }
            }
            return line.toString();
        }

        private static String stackTraceOf(Throwable thrown) {
            StringWriter writer = new StringWriter();
            thrown.printStackTrace(new PrintWriter(writer));
            return writer.toString();
        }

        private static String julLevelLetter(Level level) {
            int value = level.intValue();
            if (value >= Level.SEVERE.intValue()) return "E";
            if (value >= Level.WARNING.intValue()) return "W";
            if (value >= Level.CONFIG.intValue()) return "I";
            if (value >= Level.FINEST.intValue()) return "D";
            return "U";
        }

        private static String log4jLevel(Level level) {
            int value = level.intValue();
            if (value >= Level.SEVERE.intValue()) return "ERROR";
            if (value >= Level.WARNING.intValue()) return "WARN";
            if (value >= Level.CONFIG.intValue()) return "INFO";
            if (value >= Level.FINE.intValue()) return "DEBUG";
            return "TRACE";
        }

        private static String categoryOf(LogRecord record, String message) {
            Throwable thrown = record.getThrown();
            if (thrown instanceof OutOfDirectMemoryError) return CATEGORY_DIRECT;
            if (message.startsWith("LEAK: ")) return CATEGORY_LEAK;
            if (message.startsWith("An exceptionCaught() event was fired, and it reached at the tail of the pipeline")
                    && thrown != null) {
                return CATEGORY_TAIL;
            }
            return null;
        }

        synchronized int count(String category) {
            int n = 0;
            for (String c : categories) {
                if (category.equals(c)) n++;
            }
            return n;
        }

        /** The leak run logs exactly one OutOfDirectMemoryError; leak reports and resets as they come. */
        synchronized List<String> checkLeakRun(String directCategory) {
            List<String> problems = new ArrayList<>(unexpected);
            if (count(directCategory) != 1) {
                problems.add(count(directCategory) + " records of category " + directCategory);
            }
            return problems;
        }

        synchronized List<String> checkExactlyOneOfEach(List<String> wanted) {
            List<String> problems = new ArrayList<>(unexpected);
            for (String category : wanted) {
                if (count(category) != 1) {
                    problems.add(count(category) + " records of category " + category);
                }
            }
            return problems;
        }

        synchronized String manifestJson(String host, String pid, String layout, String nettyVersion,
                                         Instant baseTime, long seed) {
            StringBuilder json = new StringBuilder("{\n")
                    .append("  \"host\": ").append(quote(host)).append(",\n")
                    .append("  \"pid\": ").append(quote(pid)).append(",\n")
                    .append("  \"layout\": ").append(quote(layout)).append(",\n")
                    .append("  \"netty_version\": ").append(quote(nettyVersion)).append(",\n")
                    .append("  \"java_version\": ").append(quote(System.getProperty("java.runtime.version"))).append(",\n")
                    .append("  \"base_time\": ").append(quote(baseTime.toString())).append(",\n")
                    .append("  \"seed\": ").append(seed).append(",\n")
                    .append("  \"records\": [\n");
            for (int i = 0; i < manifestRecords.size(); i++) {
                json.append("    ").append(manifestRecords.get(i)).append(i + 1 < manifestRecords.size() ? ",\n" : "\n");
            }
            return json.append("  ]\n}\n").toString();
        }

        private static String firstLine(String text) {
            int newline = text.indexOf('\n');
            return newline < 0 ? text : text.substring(0, newline);
        }

        private static String quote(String text) {
            StringBuilder quoted = new StringBuilder("\"");
            for (char c : text.toCharArray()) {
                switch (c) {
                    case '"' -> quoted.append("\\\"");
                    case '\\' -> quoted.append("\\\\");
                    case '\n' -> quoted.append("\\n");
                    case '\r' -> quoted.append("\\r");
                    case '\t' -> quoted.append("\\t");
                    default -> {
                        if (c < 0x20) {
                            quoted.append(String.format(Locale.ROOT, "\\u%04x", (int) c));
                        } else {
                            quoted.append(c);
                        }
                    }
                }
            }
            return quoted.append('"').toString();
        }

        @Override
        public void flush() {
            try {
                out.flush();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        @Override
        public synchronized void close() {
            try {
                out.close();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }
    }
}
