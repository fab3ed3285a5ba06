// Debian's Chromium, headless, as this machine's closed network needs it: no background
// networking, component updates or sync (each would try hosts it cannot reach).
import { createRequire } from "node:module";

const require = createRequire(process.env.PUPPETEER_DIR + "/");
const puppeteer = require("puppeteer-core");

export function launch(chromium) {
  return puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
