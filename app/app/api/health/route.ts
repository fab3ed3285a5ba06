import { health } from "@/lib/health";

// Never cached or prerendered: every call asks PostgreSQL and Redis now.
export const dynamic = "force-dynamic";

export async function GET() {
  const result = await health();
  const failed = Object.entries(result.checks)
    .filter(([, check]) => !check.ok)
    .map(([name]) => name);
  return Response.json(
    {
      ...result,
      failed,
      runtime: process.versions.bun ? `bun ${process.versions.bun}` : `node ${process.version}`,
    },
    { status: failed.length === 0 ? 200 : 503, headers: { "cache-control": "no-store" } },
  );
}
