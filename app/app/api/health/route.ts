import { health } from "@/lib/health";

// Never cached or prerendered: every call asks PostgreSQL and Redis now.
export const dynamic = "force-dynamic";

export async function GET() {
  const result = await health();
  return Response.json(result, {
    status: result.failed.length === 0 ? 200 : 503,
    headers: { "cache-control": "no-store" },
  });
}
