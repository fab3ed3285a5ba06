import { draining, noStore } from "@/lib/lifecycle";

// Readiness for the proxy: 503 once this process drains (see lib/lifecycle.ts). A dependency
// that is down does not make it unready: every replica shares it, and pages that do not need it
// keep being served.
export const dynamic = "force-dynamic";

export function GET() {
  if (draining()) {
    return Response.json({ status: "draining" }, { status: 503, headers: noStore });
  }
  return Response.json({ status: "ready" }, { headers: noStore });
}
