import { randomUUID } from "node:crypto";
import { connection } from "next/server";
import { latestNotes, MAX_NOTE } from "@/lib/notes";
import { postNote } from "./actions";

/** Notes, newest first, read per request; the form writes through a server action. */
export default async function Notes() {
  await connection();
  const notes = await latestNotes(20);
  return (
    <main>
      <h1>Notes</h1>
      <form action={postNote}>
        {/* Made when the form was rendered: submitting it twice writes one note. */}
        <input type="hidden" name="key" value={randomUUID()} />
        <textarea name="body" aria-label="Note" required maxLength={MAX_NOTE} rows={3} />
        <button type="submit">Add note</button>
      </form>
      <ul id="notes">
        {notes.map((n) => (
          <li key={n.id}>{n.body}</li>
        ))}
      </ul>
    </main>
  );
}
