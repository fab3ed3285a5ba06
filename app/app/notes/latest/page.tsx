import { latestNotes, noteCount } from "@/lib/notes";

/**
 * A summary regenerated on demand: the note action calls revalidatePath, and otherwise at most
 * once an hour. The build has no database, so its own version says so until the first
 * regeneration.
 */
export const revalidate = 3600;

export default async function LatestNote() {
  let summary: { count: number; latest?: string } | undefined;
  try {
    const [count, [latest]] = await Promise.all([noteCount(), latestNotes(1)]);
    summary = { count, latest: latest?.body };
  } catch {
    summary = undefined;
  }
  return (
    <main>
      <h1>Latest note</h1>
      {summary ? (
        <p>
          <span id="count">{summary.count}</span> notes; the latest:{" "}
          <q id="latest">{summary.latest ?? "none yet"}</q>
        </p>
      ) : (
        <p id="count">not generated since the build</p>
      )}
      <p>
        generated at <time id="generated">{new Date().toISOString()}</time>
      </p>
    </main>
  );
}
