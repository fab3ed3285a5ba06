import { bounded, db } from "@/lib/connections";

/**
 * Notes: the demo's one write. A note carries an idempotency key made when its form was
 * rendered, and a key already stored adds nothing: a form submitted twice (a double click, a
 * retry after a lost answer) writes once. Every query is `bounded`: with PostgreSQL gone, a page
 * answers an error instead of hanging.
 */
export type Note = { id: number; body: string; createdAt: Date };

/** The longest note the form accepts. */
export const MAX_NOTE = 500;

let ready: Promise<unknown> | undefined;

/** The table, made on first use (the app's role may create in its schema). */
function ensureTable(): Promise<unknown> {
  ready ??= bounded(
    db()`
    create table if not exists notes (
      id bigserial primary key,
      idempotency_key uuid not null unique,
      body text not null check (char_length(body) between 1 and 500),
      created_at timestamptz not null default now()
    )`,
  ).catch((e: unknown) => {
    ready = undefined; // the next call tries again
    throw e;
  });
  return ready;
}

/** Stores a note once per key; whether this call wrote it. */
export async function addNote(key: string, body: string): Promise<boolean> {
  await ensureTable();
  const rows = await bounded(
    db()`
    insert into notes (idempotency_key, body) values (${key}, ${body})
    on conflict (idempotency_key) do nothing
    returning id`,
  );
  return rows.length === 1;
}

export async function latestNotes(limit: number): Promise<Note[]> {
  await ensureTable();
  const rows = await bounded(
    db()`select id, body, created_at from notes order by id desc limit ${limit}`,
  );
  return rows.map((r) => ({ id: Number(r.id), body: String(r.body), createdAt: r.created_at }));
}

export async function noteCount(): Promise<number> {
  await ensureTable();
  const [row] = await bounded(db()`select count(*)::int as n from notes`);
  return Number(row?.n ?? 0);
}
