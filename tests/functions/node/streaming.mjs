// A streaming handler (awslambda.streamifyResponse): the result is sent chunked, and a failure
// after the first bytes is sent as Lambda-Runtime-Function-Error-* trailers.
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.write("first part;");
  await new Promise((resolve) => setTimeout(resolve, 5));
  if (event.action === "fail") {
    const e = new Error("failing mid-stream");
    e.name = event.type ?? "Error";
    throw e;
  }
  const size = event.action === "big" ? (event.bytes ?? 300000) : 100;
  responseStream.write("y".repeat(size));
  responseStream.end();
});
