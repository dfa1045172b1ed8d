package lambdameter;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import java.util.Set;

/**
 * Custom metrics for the invoke in progress, written in lambda-meter's record of it.
 *
 * <pre>
 *   LambdaMeter.forRequest(context.getAwsRequestId()).putMetric("OrdersPlaced", 2, "Count");
 *   LambdaMeter.putDimension("tenant", "acme");      // the process's only open invoke
 *   LambdaMeter.putProperty("orderId", "1002");      // the value is JSON text
 * </pre>
 *
 * <p>aws-embedded-metrics' calls (putMetric, putDimensions, putProperty); no dependency, no
 * flush: the values go into the invoke's own record. In the lambda-meter layer as
 * java/lib/lambda-meter.jar, which Lambda's Java runtime puts on the classpath. It appends one
 * JSON line per call to the file LAMBDA_METER_CHANNEL names (the library's channel, read when
 * the invoke's record is made): a small synchronous append to a local file. With invokes in
 * flight on several threads, name the invoke with {@link #forRequest}. Without the layer every
 * call does nothing and returns {@link #ABSENT}, so the same code runs anywhere. Each call
 * returns a status code ({@link #OK} == 0) after checking what the library will check; it never
 * throws.
 */
public final class LambdaMeter {
    public static final int OK = 0;
    public static final int BAD_NAME = -1;
    public static final int BAD_VALUE = -2;
    public static final int BAD_UNIT = -3;
    public static final int BUSY = -6;
    public static final int ABSENT = -100;

    private static final Set<String> UNITS = Set.of(
            "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes",
            "Gigabytes", "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits",
            "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
            "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second",
            "Megabits/Second", "Gigabits/Second", "Terabits/Second", "Count/Second", "None");
    private static final long PID = ProcessHandle.current().pid();
    private static final String CHANNEL = channel();
    private static final LambdaMeter PROCESS = new LambdaMeter(null);

    private final String requestId;

    private LambdaMeter(String requestId) {
        this.requestId = requestId;
    }

    /** Calls that belong to the invoke with this request id (Context.getAwsRequestId()). */
    public static LambdaMeter forRequest(String awsRequestId) {
        return new LambdaMeter(awsRequestId);
    }

    public static int putMetric(String name, double value, String unit) {
        return PROCESS.metric(name, value, unit);
    }

    public static int putDimension(String key, String value) {
        return PROCESS.dimension(key, value);
    }

    public static int putDimensions(Map<String, String> dimensions) {
        return PROCESS.dimensions(dimensions);
    }

    public static int putProperty(String key, String json) {
        return PROCESS.property(key, json);
    }

    public int metric(String name, double value, String unit) {
        String u = unit == null ? "None" : unit;
        if (!goodName(name)) return BAD_NAME;
        if (!Double.isFinite(value)) return BAD_VALUE;
        if (!UNITS.contains(u)) return BAD_UNIT;
        return send("\"metric\":" + quote(name) + ",\"value\":" + value + ",\"unit\":" + quote(u));
    }

    public int dimension(String key, String value) {
        if (!goodName(key)) return BAD_NAME;
        if (value == null || value.isEmpty() || value.getBytes(StandardCharsets.UTF_8).length > 1024) {
            return BAD_VALUE;
        }
        return send("\"dimension\":" + quote(key) + ",\"value\":" + quote(value));
    }

    public int dimensions(Map<String, String> dimensions) {
        int status = OK;
        for (Map.Entry<String, String> e : dimensions.entrySet()) {
            int s = dimension(e.getKey(), e.getValue());
            if (status == OK) status = s;
        }
        return status;
    }

    /** Sets property key to json, one JSON value ("1002", "\"text\"", "{\"id\":7}"). */
    public int property(String key, String json) {
        if (!goodName(key)) return BAD_NAME;
        if (json == null || json.isBlank() || json.chars().anyMatch(c -> c == '\n' || c == '\r')) {
            return BAD_VALUE;
        }
        return send("\"property\":" + quote(key) + ",\"value\":" + json);
    }

    /** The wrapper's channel, or the library's default where it is preloaded without it. */
    private static String channel() {
        String named = System.getenv("LAMBDA_METER_CHANNEL");
        if (named != null && !named.isEmpty()) return named;
        String preload = System.getenv("LD_PRELOAD");
        if (preload == null || !preload.contains("liblambda_meter")) return null;
        String tmp = System.getenv("TMPDIR");
        if (tmp == null || tmp.isEmpty()) tmp = "/tmp";
        return Path.of(tmp, ".lambda-meter-" + PID + ".channel").toString();
    }

    private int send(String members) {
        if (CHANNEL == null || CHANNEL.isEmpty()) return ABSENT;
        String line = "{" + members + ",\"pid\":" + PID
                + (requestId == null ? "" : ",\"requestId\":" + quote(requestId)) + "}\n";
        try {
            Path path = Path.of(CHANNEL);
            if (!Files.exists(path)) {
                try {
                    Files.createFile(path, PosixFilePermissions.asFileAttribute(
                            PosixFilePermissions.fromString("rw-------")));
                } catch (IOException raced) {
                    // Another thread or process made it first.
                }
            }
            Files.write(path, line.getBytes(StandardCharsets.UTF_8), StandardOpenOption.APPEND);
            return OK;
        } catch (IOException | RuntimeException e) {
            return BUSY;
        }
    }

    private static boolean goodName(String name) {
        return name != null && !name.isEmpty()
                && name.getBytes(StandardCharsets.UTF_8).length <= 255
                && name.chars().noneMatch(c -> c < 0x20 || c == 0x7f);
    }

    private static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }
}
