// A custom runtime on node:http alone: the Runtime API loop written by hand, with a keep-alive
// agent, as small custom Node runtimes do.
import http from "node:http";
import { act } from "./actions.mjs";

const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(":");
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const base = "/2018-06-01/runtime";

function call(method, path, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, method, path, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

for (;;) {
  const next = await call("GET", `${base}/invocation/next`);
  const id = next.headers["lambda-runtime-aws-request-id"];
  const context = { awsRequestId: id };
  try {
    const result = await act(JSON.parse(next.body.toString()), context);
    const body = typeof result === "string" ? JSON.stringify(result) : JSON.stringify(result);
    await call("POST", `${base}/invocation/${id}/response`, body, { "Content-Type": "application/json" });
    // Work after the response (flushing telemetry, say): billed, and seen by no caller.
    const event = JSON.parse(next.body.toString());
    if (event.postMs) await act({ action: "sleep", ms: event.postMs }, context);
  } catch (e) {
    const body = JSON.stringify({ errorType: e.name, errorMessage: e.message });
    await call("POST", `${base}/invocation/${id}/error`, body, {
      "Content-Type": "application/json",
      "Lambda-Runtime-Function-Error-Type": e.name,
    });
  }
}
