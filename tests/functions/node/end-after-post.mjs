// A handler for aws-lambda-ric that ends the process after its result was posted and before
// the client asks for the next event (tests/records_survive.rs). The client posts the result
// as the handler's promise settles, then asks for the next event in a setImmediate callback;
// the handler's own setImmediate callback was queued first, so it runs in between.
//
// {"then": HOW}: "exit" process.exit(0), "term" SIGTERM to itself (default disposition),
// "abort" process.abort(). {"fail": "Type"} throws instead of returning.

function end(how) {
  if (how === "exit") {
    process.exit(0);
  }
  if (how === "term") {
    process.kill(process.pid, "SIGTERM");
  }
  if (how === "abort") {
    process.abort();
  }
  // Hold the thread (never reached for a fatal signal sent to itself): no /next from here.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 30000);
}

export const handler = async (event, context) => {
  if (event.then) {
    setImmediate(() => end(event.then));
  }
  if (event.fail) {
    const e = new Error("failing on purpose");
    e.name = event.fail;
    throw e;
  }
  return { ok: true, requestId: context.awsRequestId };
};
