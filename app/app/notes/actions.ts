"use server";

import { revalidatePath } from "next/cache";
import { addNote, MAX_NOTE } from "@/lib/notes";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The form's server action: one note per idempotency key, then the pages that show notes are
 * regenerated (the list per request, the ISR summary on demand, on every replica that shares
 * the cache).
 */
export async function postNote(form: FormData): Promise<void> {
  const key = String(form.get("key") ?? "");
  const body = String(form.get("body") ?? "").trim();
  if (!UUID.test(key) || body.length === 0 || body.length > MAX_NOTE) return;
  await addNote(key, body);
  revalidatePath("/notes");
  revalidatePath("/notes/latest");
}
