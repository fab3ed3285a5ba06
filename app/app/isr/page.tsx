/**
 * Incremental static regeneration: built once, regenerated in the background at most every
 * 2 s after a request. The runner must be able to save the new version (it survives a
 * restart), which `verify --prod` checks.
 */
export const revalidate = 2;

export default function Isr() {
  const generatedAt = new Date().toISOString();
  return (
    <main>
      <h1>Regenerated page</h1>
      <p>
        generated at <time id="generated">{generatedAt}</time>
      </p>
    </main>
  );
}
