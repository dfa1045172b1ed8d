// A Java runtime whose invokes make the JVM handle SIGSEGV itself: each one reads a field
// through null references in a hot loop (compiled code relies on implicit null checks: the
// load faults and the JVM's SIGSEGV handler turns the fault into a NullPointerException).
// During the first invoke it prints the JVM's own view of its signal handlers (the "Signal
// Handlers" section of VM.info: handler, mask, flags, and with libjsig the chained handler).
// Talks to the Runtime API with HttpURLConnection; prints one line per invoke; the output
// carries nothing run-specific. The argument is how many reads each invoke makes.

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import javax.management.ObjectName;

public class NullCheckRuntime {
    static final class Box {
        int value = 1;
    }

    static int read(Box b) {
        return b.value;
    }

    /** Reads through null every other time; returns how many NullPointerExceptions came. */
    static int nullChecks(int rounds) {
        Box[] boxes = {new Box(), null};
        int caught = 0;
        int sum = 0;
        for (int i = 0; i < rounds; i++) {
            try {
                sum += read(boxes[i & 1]);
            } catch (NullPointerException e) {
                caught++;
            }
        }
        return sum == rounds - rounds / 2 ? caught : -1;
    }

    /** The "Signal Handlers" section of the JVM's VM.info diagnostic command. */
    static String signalHandlers() throws Exception {
        String info = (String) ManagementFactory.getPlatformMBeanServer().invoke(
                new ObjectName("com.sun.management:type=DiagnosticCommand"), "vmInfo",
                new Object[] {null}, new String[] {String[].class.getName()});
        int start = info.indexOf("Signal Handlers:");
        int end = info.indexOf("\n\n", start);
        if (start < 0) {
            return "no signal handlers section";
        }
        return info.substring(start, end < 0 ? info.length() : end);
    }

    static String requestId;

    static byte[] call(String method, String url, byte[] body) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(url).openConnection();
        c.setRequestMethod(method);
        if (body != null) {
            c.setDoOutput(true);
            c.setFixedLengthStreamingMode(body.length);
            try (OutputStream o = c.getOutputStream()) {
                o.write(body);
            }
        }
        try (InputStream in = c.getInputStream()) {
            byte[] out = in.readAllBytes();
            if (method.equals("GET")) {
                requestId = c.getHeaderField("Lambda-Runtime-Aws-Request-Id");
            }
            return out;
        }
    }

    public static void main(String[] args) throws Exception {
        int rounds = args.length > 0 ? Integer.parseInt(args[0]) : 100000;
        String base = "http://" + System.getenv("AWS_LAMBDA_RUNTIME_API")
                + "/2018-06-01/runtime/invocation/";
        System.out.println("init: caught " + nullChecks(rounds));
        for (int n = 1; ; n++) {
            call("GET", base + "next", null);
            int caught = nullChecks(rounds);
            System.out.println("invoke " + n + ": caught " + caught);
            if (n == 1) {
                System.out.println(signalHandlers());
            }
            // Time for the JVM's periodic checks (-Xcheck:jni) to look at the handlers.
            Thread.sleep(100);
            System.out.flush();
            byte[] result = ("{\"caught\":" + caught + "}").getBytes(StandardCharsets.UTF_8);
            call("POST", base + requestId + "/response", result);
        }
    }
}
