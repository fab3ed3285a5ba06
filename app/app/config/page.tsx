import { connection } from "next/server";

/**
 * Configuration as the app sees it. NEXT_PUBLIC_* is inlined when the app is built (a build
 * argument in the image); everything else is read when the request runs (the container's
 * environment, from the env file).
 */
export default async function Config() {
  await connection(); // rendered per request, so server variables are today's
  return (
    <main>
      <h1>Configuration</h1>
      <dl>
        <dt>NEXT_PUBLIC_APP_NAME (build time)</dt>
        <dd id="public">{process.env.NEXT_PUBLIC_APP_NAME || "unset"}</dd>
        <dt>APP_GREETING (run time)</dt>
        <dd id="server">{process.env.APP_GREETING || "unset"}</dd>
      </dl>
    </main>
  );
}
