// The grown app in prod as a person sees it: headless Chromium (Debian's) with JavaScript on.
// /env's client component shows both NEXT_PUBLIC_* values after hydration; /guestbook's form
// calls its server action (Next.js's fetch with the Next-Action header, not a plain form post)
// and the new entry appears; the CSP blocks nothing the app itself needs. Prints one JSON line.
// Usage: node grown.mjs <base url> <chromium>
import { launch } from "./launch.mjs";

const [base, chromium] = process.argv.slice(2);
const browser = await launch(chromium);
try {
  const tab = await browser.newPage();
  const problems = [];
  tab.on("console", (m) => {
    if (m.type() === "error") problems.push(m.text());
  });
  tab.on("pageerror", (e) => problems.push(String(e)));
  await tab.goto(`${base}/env`, { waitUntil: "networkidle0", timeout: 60_000 });
  const channel = await tab.$eval("#channel", (e) => e.textContent);
  const name = await tab.$eval("#name", (e) => e.textContent);
  const hydrated = await tab.evaluate(() => Boolean(window.next?.router || window.__next_f));

  await tab.goto(`${base}/guestbook`, { waitUntil: "networkidle0", timeout: 60_000 });
  let action = null;
  tab.on("request", (r) => {
    if (r.method() === "POST" && r.headers()["next-action"]) action = r.headers()["next-action"];
  });
  const who = `signed-in-chromium-${Date.now()}`;
  await tab.type("input[name=name]", who);
  await tab.click("button[type=submit]");
  await tab.waitForFunction(
    (w) => [...document.querySelectorAll(".entry")].some((e) => e.textContent === w),
    { timeout: 30_000 },
    who,
  );
  const url = tab.url();
  console.log(JSON.stringify({ channel, name, hydrated, action: Boolean(action), url, problems }));
} finally {
  await browser.close();
}
