/**
 * What user names, virtual host names and tags may be; shared by the admin calls (which prefix "a user name …") and by
 * a definitions import (which prefixes the entry's path, "users[2].name: …"). Each returns a problem or null.
 */

/** Names travel as AMQP short strings (vhost in connection.open) and as CLI arguments: printable, 1–255 bytes. */
export function nameProblem(name: unknown): string | null {
  if (typeof name !== 'string') return 'must be a string';
  if (name.length === 0) return 'must not be empty';
  if (Buffer.byteLength(name) > 255) return 'must be at most 255 bytes';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'must not contain control characters';
  if (/[\uD800-\uDFFF]/u.test(name)) return 'must be valid Unicode';
  return null;
}

/** Tags are free words (administrator, monitoring, management, …); a comma would split one on the command line. */
export function tagProblem(tag: unknown): string | null {
  if (typeof tag !== 'string') return 'must be a string';
  if (tag.includes(',')) return 'must not contain a comma';
  return tag.trim() === '' ? null : nameProblem(tag.trim());
}

/** Trimmed, empty ones dropped, each once, in the order given. */
export function normalizeTags(tags: readonly string[]): string[] {
  return [...new Set(tags.map((tag) => tag.trim()).filter((tag) => tag !== ''))];
}
