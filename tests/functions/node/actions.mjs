// What a test event asks for; shared by every Node.js test function (see tests/functions/python
// for the same protocol in Python).
import { execSync, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// The layer's shim for custom metrics (on NODE_PATH through the wrapper), if there is one.
let metrics = null;
try {
  metrics = createRequire(import.meta.url)("lambda-meter");
} catch {
  metrics = null;
}

// Resident KiB of lambda-meter's own mappings (its file's pages, and those it wrote).
function libraryKb() {
  let kb = 0;
  let ours = false;
  for (const line of readFileSync("/proc/self/smaps", "utf8").split("\n")) {
    const first = line.split(/\s+/)[0];
    if (first.includes("-") && !first.endsWith(":")) {
      ours = line.includes("liblambda_meter");
    } else if (ours && first === "Rss:") {
      kb += parseInt(line.split(/\s+/)[1], 10);
    }
  }
  return kb;
}

export async function act(event, context) {
  const action = event?.action ?? "ok";
  switch (action) {
    case "ok":
      return { ok: true, requestId: context.awsRequestId };
    case "sleep": {
      // Timers may fire a little early by the monotonic clock: wait until it agrees.
      const ms = event.ms ?? 50;
      const start = performance.now();
      while (performance.now() - start < ms) {
        await new Promise((resolve) => setTimeout(resolve, Math.max(1, ms - (performance.now() - start))));
      }
      return { slept_ms: ms };
    }
    case "fail": {
      // "message_bytes" and "depth" make the message longer and the stack deeper.
      const message = "failing on purpose" + "m".repeat(event.message_bytes ?? 0);
      const deeper = (n) => {
        if (n <= 0) {
          const e = new Error(message);
          e.name = event.type ?? "Error";
          throw e;
        }
        return deeper(n - 1) + 1;
      };
      deeper(event.depth ?? 0);
      break;
    }
    case "big":
      return "x".repeat(event.bytes ?? 300000);
    case "rss":
      return { rssKb: Math.round(process.memoryUsage().rss / 1024), libraryKb: libraryKb() };
    case "echo":
      return { size: JSON.stringify(event).length };
    case "custom": {
      // "calls", then a wait of "ms" (other invokes run meanwhile where they interleave), then
      // "after".
      const call = ([name, ...args]) => metrics[name](...args);
      const statuses = (event.calls ?? []).map(call);
      if (event.ms) await new Promise((resolve) => setTimeout(resolve, event.ms));
      statuses.push(...(event.after ?? []).map(call));
      return event.report ? { statuses, NODE_PATH: process.env.NODE_PATH } : { calls: statuses.length };
    }
    case "subprocess": {
      if (event.how === "execSync") {
        return { out: execSync("echo child; true").toString().trim() };
      }
      const status = await new Promise((resolve, reject) => {
        const child = spawn("sh", ["-c", "exit 3"], { stdio: "ignore" });
        child.on("error", reject);
        child.on("exit", (code) => resolve(code));
      });
      return { status };
    }
    case "child_partial":
      // A child process writes to the same stdout without a newline.
      execSync(`printf '%s' '${event.text ?? "child: 50%"}'`, { stdio: "inherit" });
      return { child: true };
    case "partial":
      process.stdout.write(event.text ?? "progress: 50%");
      return { partial: true };
    case "exit":
      process.exit(event.code ?? 3);
      break;
    case "crash":
      process.abort();
      break;
    default:
      throw new Error(`unknown action ${action}`);
  }
}
