import { noStore } from "@/lib/lifecycle";

// Liveness: nothing but this process answering (see lib/lifecycle.ts).
export const dynamic = "force-dynamic";

export function GET() {
  return Response.json({ status: "live" }, { headers: noStore });
}
