// A buffered handler for aws-lambda-ric. With TEST_SLOW_FIRST_INIT_MS=N, the first process of an
// environment (no file .slow-init-done in the temporary directory yet) takes N ms to load.
import { existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { act } from "./actions.mjs";

if (process.env.TEST_SLOW_FIRST_INIT_MS) {
  const done = join(tmpdir(), ".slow-init-done");
  if (!existsSync(done)) {
    writeFileSync(done, "");
    await new Promise((r) => setTimeout(r, Number(process.env.TEST_SLOW_FIRST_INIT_MS)));
  }
}

export const handler = async (event, context) => act(event, context);
