// Hot reload as a person sees it: headless Chromium (Debian's) loads a dev page, the HMR
// socket connects, an edit to the page appears in place without a full reload. Prints one JSON
// line: { sockets, latencyMs, fullReload, text }.
// Usage: node hmr.mjs <url> <page.tsx> <chromium>
import { writeFileSync } from "node:fs";
import { launch } from "./launch.mjs";

const [url, file, chromium] = process.argv.slice(2);
const page = (marker) => `export default function Page() {\n  return <p id="marker">${marker}</p>;\n}\n`;

const browser = await launch(chromium);
try {
  const tab = await browser.newPage();
  const cdp = await tab.createCDPSession();
  await cdp.send("Network.enable");
  const sockets = [];
  cdp.on("Network.webSocketCreated", (e) => sockets.push(e.url));
  const opened = new Set();
  cdp.on("Network.webSocketHandshakeResponseReceived", (e) => opened.add(e.requestId));
  await tab.goto(url, { waitUntil: "load", timeout: 90_000 });
  await tab.waitForFunction(() => document.getElementById("marker")?.textContent === "marker-one", {
    timeout: 90_000,
  });
  // Let the HMR socket settle, then mark this document: a full reload would lose the mark.
  await tab.waitForFunction(() => true);
  await new Promise((r) => setTimeout(r, 1000));
  await tab.evaluate(() => {
    window.__axionNoReload = true;
  });
  const latencies = [];
  for (const marker of ["marker-two", "marker-three", "marker-four"]) {
    const t0 = performance.now();
    writeFileSync(file, page(marker));
    await tab.waitForFunction((m) => document.getElementById("marker")?.textContent === m, { timeout: 60_000, polling: "mutation" }, marker);
    latencies.push(Math.round(performance.now() - t0));
  }
  const kept = await tab.evaluate(() => window.__axionNoReload === true);
  const text = await tab.evaluate(() => document.getElementById("marker")?.textContent);
  console.log(JSON.stringify({ sockets, socketsOpened: opened.size, latencyMs: latencies, fullReload: !kept, text }));
} finally {
  await browser.close();
}
