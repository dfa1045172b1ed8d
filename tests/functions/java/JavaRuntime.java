// Custom Lambda runtime loops on the JDK's own HTTP stacks, as Java runtimes and frameworks use
// them. The first argument picks the stack:
//   httpclient            java.net.http.HttpClient, default version (HTTP/2: on plain http it
//                         sends h2c upgrade headers on HTTP/1.1 requests)
//   httpclient-h1         the same client forced to HTTP/1.1
//   urlconnection         HttpURLConnection, blocking, no timeouts
//   urlconnection-timeout HttpURLConnection with connect and read timeouts set
// The second argument is how many threads run the loop at once (default 1).
// The test event protocol is the one in tests/functions/python/handler.py ("custom" uses the
// layer's Java shim, layer/shims-src/java, which must then be on the classpath), plus
// "downstream": `calls` GETs of http://host:port/<ms> (the delayed server of
// tests/support/downstream_server.rs) through a java.net.http.HttpClient kept for the process
// ("version": "h2" for the client's default HTTP/2 attempt, else HTTP/1.1), as a function
// keeps an SDK client.

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.HttpURLConnection;
import java.net.URI;
import java.net.URL;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

public class JavaRuntime {
    static class ValueError extends RuntimeException {
        ValueError(String m) { super(m); }
    }

    static class OrderNotFound extends RuntimeException {
        OrderNotFound(String m) { super(m); }
    }

    record Reply(int status, Map<String, String> headers, byte[] body) {}

    interface Transport {
        Reply call(String method, String path, byte[] body, Map<String, String> headers) throws Exception;
    }

    static String base;

    /** The clients of the "downstream" action, made when first used and kept. */
    static class Downstream {
        static final HttpClient H1 = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        static final HttpClient H2 = HttpClient.newBuilder().build();
    }

    /** Headers in the order given (Map.of iterates in a per-JVM random order). */
    static Map<String, String> headers(String... kv) {
        Map<String, String> m = new java.util.LinkedHashMap<>();
        for (int i = 0; i + 1 < kv.length; i += 2) m.put(kv[i], kv[i + 1]);
        return m;
    }

    static String field(String json, String key) {
        Matcher m = Pattern.compile("\"" + key + "\":(\"([^\"]*)\"|([0-9]+))").matcher(json);
        if (!m.find()) return null;
        return m.group(2) != null ? m.group(2) : m.group(3);
    }

    static String act(String event, String requestId) throws Exception {
        String action = field(event, "action");
        if (action == null) action = "ok";
        switch (action) {
            case "ok":
                return "{\"ok\":true}";
            case "sleep": {
                long ms = Long.parseLong(field(event, "ms"));
                long end = System.nanoTime() + ms * 1_000_000L;
                for (long left; (left = end - System.nanoTime()) > 0; ) {
                    Thread.sleep(left / 1_000_000L, (int) (left % 1_000_000L));
                }
                return "{\"slept_ms\":" + ms + "}";
            }
            case "fail": {
                String type = field(event, "type");
                if ("ValueError".equals(type)) throw new ValueError("failing on purpose");
                if ("OrderNotFound".equals(type)) throw new OrderNotFound("failing on purpose");
                throw new IllegalStateException("failing on purpose");
            }
            case "big":
                return "\"" + "x".repeat(Integer.parseInt(field(event, "bytes"))) + "\"";
            case "echo":
                return "{\"size\":" + event.getBytes(StandardCharsets.UTF_8).length + "}";
            case "custom": {
                // The layer's shim (lambda-meter.jar on the classpath): this invoke's own values,
                // named by its request id, while others are in flight on other threads.
                long n = Long.parseLong(field(event, "n"));
                lambdameter.LambdaMeter mine = lambdameter.LambdaMeter.forRequest(requestId);
                int a = mine.metric("Event", n, "Count");
                int b = mine.property("eventNumber", Long.toString(n));
                int c = mine.metric("Bad", 1, "Furlongs");
                Thread.sleep(Long.parseLong(field(event, "ms")));
                return "{\"statuses\":[" + a + "," + b + "," + c + "]}";
            }
            case "downstream": {
                HttpClient client = "h2".equals(field(event, "version")) ? Downstream.H2 : Downstream.H1;
                URI uri = URI.create("http://" + field(event, "host") + ":" + field(event, "port") + "/" + field(event, "ms"));
                int calls = Integer.parseInt(field(event, "calls"));
                long got = 0;
                for (int i = 0; i < calls; i++) {
                    HttpResponse<byte[]> r = client.send(HttpRequest.newBuilder(uri).build(), HttpResponse.BodyHandlers.ofByteArray());
                    if (r.statusCode() != 200) throw new IllegalStateException("status " + r.statusCode());
                    got += r.body().length;
                }
                return "{\"calls\":" + calls + ",\"bytes\":" + got + "}";
            }
            case "subprocess": {
                Process p = new ProcessBuilder("sh", "-c", "exit 3").start();
                return "{\"status\":" + p.waitFor() + "}";
            }
            default:
                throw new IllegalArgumentException("unknown action " + action);
        }
    }

    static Transport httpClient(HttpClient.Version version) {
        HttpClient client = HttpClient.newBuilder().version(version).build();
        return (method, path, body, headers) -> {
            HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(base + path));
            headers.forEach(b::header);
            b.method(method, body == null ? HttpRequest.BodyPublishers.noBody() : HttpRequest.BodyPublishers.ofByteArray(body));
            HttpResponse<byte[]> r = client.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
            Map<String, String> h = new java.util.HashMap<>();
            r.headers().map().forEach((k, v) -> h.put(k.toLowerCase(), v.get(0)));
            return new Reply(r.statusCode(), h, r.body());
        };
    }

    static Transport urlConnection(boolean timeouts) {
        return (method, path, body, headers) -> {
            HttpURLConnection c = (HttpURLConnection) new URL(base + path).openConnection();
            if (timeouts) {
                c.setConnectTimeout(5_000);
                c.setReadTimeout(600_000);
            }
            c.setRequestMethod(method);
            headers.forEach(c::setRequestProperty);
            if (body != null) {
                c.setDoOutput(true);
                c.setFixedLengthStreamingMode(body.length);
                try (OutputStream o = c.getOutputStream()) {
                    o.write(body);
                }
            }
            int status = c.getResponseCode();
            ByteArrayOutputStream all = new ByteArrayOutputStream();
            try (InputStream in = status < 400 ? c.getInputStream() : c.getErrorStream()) {
                if (in != null) in.transferTo(all);
            }
            Map<String, String> h = new java.util.HashMap<>();
            c.getHeaderFields().forEach((k, v) -> { if (k != null) h.put(k.toLowerCase(), v.get(0)); });
            return new Reply(status, h, all.toByteArray());
        };
    }

    static void loop(Transport t) {
        String inv = "/2018-06-01/runtime/invocation/";
        try {
            for (;;) {
                Reply next = t.call("GET", inv + "next", null, headers());
                String id = next.headers().get("lambda-runtime-aws-request-id");
                String event = new String(next.body(), StandardCharsets.UTF_8);
                try {
                    byte[] out = act(event, id).getBytes(StandardCharsets.UTF_8);
                    t.call("POST", inv + id + "/response", out, headers("Content-Type", "application/json"));
                } catch (RuntimeException e) {
                    String type = e.getClass().getSimpleName();
                    byte[] out = ("{\"errorType\":\"" + type + "\",\"errorMessage\":\"" + e.getMessage() + "\"}")
                            .getBytes(StandardCharsets.UTF_8);
                    t.call("POST", inv + id + "/error", out,
                            headers("Content-Type", "application/json", "Lambda-Runtime-Function-Error-Type", type));
                }
            }
        } catch (Exception e) {
            System.err.println("runtime loop failed: " + e);
            System.exit(1);
        }
    }

    public static void main(String[] args) throws Exception {
        base = "http://" + System.getenv("AWS_LAMBDA_RUNTIME_API");
        String mode = args.length > 0 ? args[0] : "httpclient";
        int threads = args.length > 1 ? Integer.parseInt(args[1]) : 1;
        Transport t = switch (mode) {
            case "httpclient" -> httpClient(HttpClient.Version.HTTP_2);
            case "httpclient-h1" -> httpClient(HttpClient.Version.HTTP_1_1);
            case "urlconnection" -> urlConnection(false);
            case "urlconnection-timeout" -> urlConnection(true);
            default -> throw new IllegalArgumentException(mode);
        };
        Thread[] pool = new Thread[threads];
        for (int i = 0; i < threads; i++) {
            pool[i] = new Thread(() -> loop(t), "runtime-" + i);
            pool[i].start();
        }
        for (Thread th : pool) th.join();
    }
}
