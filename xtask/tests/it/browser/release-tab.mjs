// A tab of the first release held across the second release's rollout (`cargo xtask verify
// --swarm`, which runs this with the Chromium and puppeteer-core the browser tests install).
// The tab opens a page before the update and, once the xtask says the update is done (the `go`
// file appears), still running the first release's code: submits the page's form (when it has
// one) and follows its first link to another page. Everything it saw is printed as one JSON
// line: failed responses, errors, full page loads (Next.js's hard reload into the new release
// counts as one), where each step ended.
// Usage: node release-tab.mjs <base url> <chromium> <page> <has form: 1|0> <marker> <ready file> <go file>
import { existsSync, writeFileSync } from "node:fs";
import { launch } from "./launch.mjs";

const [base, chromium, page, hasForm, marker, ready, go] = process.argv.slice(2);
const seen = { failed: [], errors: [], page_loads: 0 };
// Next.js's own answer to an action the server no longer has (409, on which it reloads the page)
// is not a failure, nor the console's line about it.
let notFound = false;
const browser = await launch(chromium);
try {
  const tab = await browser.newPage();
  tab.on("pageerror", (e) => seen.errors.push(String(e)));
  tab.on("console", (m) => {
    if (m.type() === "error" && !(notFound && m.text().includes("409"))) seen.errors.push(m.text());
  });
  tab.on("response", (r) => {
    if (r.headers()["x-nextjs-action-not-found"] === "1") notFound = true;
    else if (r.status() >= 400) {
      const u = new URL(r.url());
      seen.failed.push(`${r.status()} ${r.request().method()} ${u.pathname}${u.search}`);
    }
  });
  // ERR_ABORTED: the page itself cancelled the request (a prefetch a navigation superseded).
  tab.on("requestfailed", (r) => {
    const why = r.failure()?.errorText;
    if (why !== "net::ERR_ABORTED") seen.failed.push(`${why} ${r.url()}`);
  });
  tab.on("domcontentloaded", () => seen.page_loads++);
  await tab.goto(base + page, { waitUntil: "networkidle0", timeout: 60_000 });
  const before = {
    page,
    scripts: await tab.$$eval("script[src]", (s) => s.map((x) => new URL(x.src).pathname)),
  };
  const loadsBefore = seen.page_loads;
  writeFileSync(ready, "1");
  while (!existsSync(go)) await new Promise((r) => setTimeout(r, 100));

  const after = {};
  if (hasForm === "1") {
    const field = await tab.$("form textarea, form input:not([type=hidden]):not([type=submit])");
    if (field) await field.type(marker);
    const answer = tab.waitForResponse((r) => r.request().method() === "POST", { timeout: 30_000 });
    await tab.click("form [type=submit]");
    const r = await answer;
    after.action_status = r.status();
    after.action_not_found = r.headers()["x-nextjs-action-not-found"] === "1";
    await tab.waitForNetworkIdle({ idleTime: 300, timeout: 30_000 }).catch(() => {});
  }
  const link = await tab.$$eval("a[href^='/']", (as) =>
    as.map((a) => a.getAttribute("href")).find((h) => h !== location.pathname),
  );
  if (link) {
    after.link = link;
    await tab.click(`a[href='${link}']`);
    await tab
      .waitForFunction((l) => location.pathname === l, { timeout: 30_000 }, link)
      .catch(() => {});
    await tab.waitForNetworkIdle({ idleTime: 300, timeout: 30_000 }).catch(() => {});
    after.navigated_to = new URL(tab.url()).pathname;
  }
  after.page_loads = seen.page_loads - loadsBefore;
  console.log(JSON.stringify({ before, after, failed: seen.failed, errors: seen.errors }));
} finally {
  await browser.close();
}
