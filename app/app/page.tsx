import Image from "next/image";

export default function Home() {
  return (
    <main>
      <Image src="/logo.png" alt="AXion Hub" width={64} height={64} priority />
      <h1 id="title">{process.env.NEXT_PUBLIC_APP_NAME || "AXion Hub"}</h1>
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
