export default function Home() {
  return (
    <main>
      <h1>AXion Hub</h1>
      <p>
        Next.js 16 served by bun, backed by PostgreSQL 17 and Redis 7. Service health:{" "}
        <a href="/api/health">
          <code>/api/health</code>
        </a>
        .
      </p>
    </main>
  );
}
