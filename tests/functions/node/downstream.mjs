// A handler that calls an HTTP server (the test's, which answers `/<ms>` after that many
// milliseconds) through Node.js's own fetch (undici), for lambda-meter's downstream figures.
export const handler = async (event) => {
  const { host, port, ms, calls } = event;
  let got = 0;
  for (let i = 0; i < calls; i++) {
    const r = await fetch(`http://${host}:${port}/${ms}`);
    got += (await r.arrayBuffer()).byteLength;
  }
  return { client: "fetch", bytes: got };
};
